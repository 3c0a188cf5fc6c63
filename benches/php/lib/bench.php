<?php

declare(strict_types=1);

namespace TaskManager\Bench;

use Closure;
use TaskManager\TaskManager;

/**
 * One implementation in one measurement: how to set the stage before a run (untimed: empty the
 * queue, fill it), how each forked process gets ready and what it then does (timed), and how
 * to check the outcome afterwards.
 */
final class Contender
{
    /**
     * @param Closure(): void $setUp
     * @param Closure(int): (callable(): array<string, mixed>) $prepare runs in the child
     * @param Closure(list<array<string, mixed>>): void $check throws when the run went wrong
     */
    public function __construct(
        public readonly string $name,
        public readonly Closure $setUp,
        public readonly Closure $prepare,
        public readonly Closure $check,
    ) {
    }
}

/**
 * The measurements. Every implementation of a figure is measured in the same rounds
 * (round 1: each of them once, round 2: each again, ...), so that a slow spell of the machine
 * falls on all of them rather than on one.
 */
final class Bench
{
    public const RUNS = 3;

    /** The parent's own clients: for filling, emptying and checking between runs. */
    private TaskManager $withHistory;
    private TaskManager $withoutHistory;
    private int $runs = 0;
    private int $busyRuns = 0;

    public function __construct(
        private readonly Server $server,
        private readonly int $tasks,
        private readonly ?ServerCpu $cpu,
    ) {
    }

    /** Creates the tables of the three implementations in the bench database and registers the type. */
    public function setUp(): void
    {
        $this->withHistory = Ours::client($this->server->libraryConfig(true));
        Ours::setUp($this->withHistory);
        $this->withoutHistory = Ours::client($this->server->libraryConfig(false));
        Floor::createTable(Admin::pdo());
        Laravel::createTable(Admin::pdo());
    }

    /**
     * Measures each contender RUNS times with $processes processes over $tasks tasks.
     *
     * @param list<Contender> $contenders
     * @return array<string, array{rate: Figure, cpu: ?Figure}> by contender name; cpu in
     *         server microseconds per task, null when the server's CPU cannot be read
     */
    public function compare(string $figure, int $processes, int $tasks, array $contenders): array
    {
        $rates = [];
        $cpu = [];
        for ($run = 1; $run <= self::RUNS; $run++) {
            foreach ($contenders as $contender) {
                ($contender->setUp)();
                $idle = $this->settle();
                $this->busyRuns += $idle ? 0 : 1;
                $this->runs++;
                $result = Processes::run($processes, $contender->prepare, $this->cpu);
                ($contender->check)($result['reports']);
                $rate = $tasks / $result['seconds'];
                $perTask = $result['server_cpu'] === null ? null : $result['server_cpu'] * 1e6 / $tasks;
                $rates[$contender->name][] = $rate;
                $cpu[$contender->name][] = $perTask;
                Progress::say(sprintf(
                    '%s, run %d/%d, %s: %s tasks/s%s%s',
                    $figure,
                    $run,
                    self::RUNS,
                    $contender->name,
                    Figure::number($rate),
                    $perTask === null ? '' : ', server CPU ' . Figure::number($perTask) . ' us/task',
                    $idle ? '' : ' (the server was busy with another load before the run)'
                ));
            }
        }
        $figures = [];
        foreach ($rates as $name => $runs) {
            $measured = array_filter($cpu[$name], static fn (?float $v): bool => $v !== null);
            $figures[$name] = [
                'rate' => Figure::of($runs),
                'cpu' => count($measured) === self::RUNS ? Figure::of(array_values($measured)) : null,
            ];
        }
        return $figures;
    }

    /**
     * Waits until the server is idle (at most one clock tick of CPU in 100 ms), at most 3 s,
     * so that the purge and page flushing which emptying and filling leave behind do not fall
     * into the timed run of whichever implementation comes next. When the server's CPU
     * cannot be read, a fixed half second. False when the server stayed busy: some other load
     * runs on it, and it weighs on the figures (and on the CPU per task).
     */
    private function settle(): bool
    {
        if ($this->cpu === null) {
            usleep(500_000);
            return true;
        }
        $deadline = microtime(true) + 3.0;
        do {
            $before = $this->cpu->seconds();
            usleep(100_000);
            $idle = $this->cpu->seconds() - $before <= 0.011;
        } while (!$idle && microtime(true) < $deadline);
        return $idle;
    }

    /** How many runs found the server busy with something else before they started, of how many. @return array{int, int} */
    public function busyRuns(): array
    {
        return [$this->busyRuns, $this->runs];
    }

    /**
     * Enqueue of one task per call, $producers processes sharing the tasks.
     *
     * @return array<string, array{rate: Figure, cpu: ?Figure}> keys ours, floor, laravel
     */
    public function enqueue(int $producers): array
    {
        $per = intdiv($this->tasks, $producers);
        $total = $per * $producers;
        $first = 0;
        $numbers = function () use (&$first, $total): void {
            $first = Numbers::take($total);
        };
        return $this->compare("enqueue, $producers producer(s)", $producers, $total, [
            new Contender(
                'ours',
                function () use ($numbers): void {
                    Ours::empty($this->withHistory);
                    $numbers();
                },
                function (int $w) use (&$first, $per): callable {
                    $tm = Ours::client($this->server->libraryConfig(true));
                    return static fn (): array => Ours::enqueue($tm, $first + $w * $per, $per);
                },
                fn (array $reports) => Ours::checkEnqueued($this->withHistory, $total),
            ),
            new Contender(
                'floor',
                function () use ($numbers): void {
                    Floor::empty(Admin::pdo());
                    $numbers();
                },
                function (int $w) use (&$first, $per): callable {
                    $floor = Floor::connect($this->server);
                    return static fn (): array => $floor->enqueue($first + $w * $per, $per);
                },
                static fn (array $reports) => Floor::checkEnqueued(Admin::pdo(), $total),
            ),
            new Contender(
                'laravel',
                function () use ($numbers): void {
                    Laravel::empty(Admin::pdo());
                    $numbers();
                },
                function (int $w) use (&$first, $per): callable {
                    $laravel = Laravel::connect($this->server);
                    return static fn (): array => $laravel->pushMany($first + $w * $per, $per);
                },
                static fn (array $reports) => Laravel::checkPushed(Admin::pdo(), $total),
            ),
        ]);
    }

    /**
     * Drains of a full queue by $workers processes: ours claim + complete with and without
     * history, ours with completeAndClaim, ours claiming 100 and completing them in one call,
     * the floor, Laravel.
     *
     * @return array<string, array{rate: Figure, cpu: ?Figure}> keys ours, ours_no_history,
     *         ours_looped, ours_batched, floor, laravel
     */
    public function drain(int $workers): array
    {
        $tasks = $this->tasks;
        $ours = function (string $name, bool $history, callable $work): Contender {
            $tm = $history ? $this->withHistory : $this->withoutHistory;
            return new Contender(
                $name,
                function () use ($tm): void {
                    Ours::empty($tm);
                    Ours::enqueueBatches($tm, Numbers::take($this->tasks), $this->tasks);
                },
                function (int $w) use ($history, $work): callable {
                    $client = Ours::client($this->server->libraryConfig($history));
                    return static fn (): array => $work($client, "bench-$w");
                },
                fn (array $reports) => Ours::checkDrained($tm, $this->tasks, $reports),
            );
        };
        return $this->compare("drain, $workers worker(s)", $workers, $tasks, [
            $ours('ours', true, Ours::drain(...)),
            $ours('ours_no_history', false, Ours::drain(...)),
            $ours('ours_looped', true, Ours::drainLooped(...)),
            $ours('ours_batched', true, Ours::drainBatched(...)),
            new Contender(
                'floor',
                static function () use ($tasks): void {
                    Floor::empty(Admin::pdo());
                    (new Floor(Admin::pdo()))->insertBatches(Numbers::take($tasks), $tasks);
                },
                function (int $w): callable {
                    $floor = Floor::connect($this->server);
                    return static fn (): array => $floor->drain();
                },
                static fn (array $reports) => Floor::checkDrained(Admin::pdo(), $tasks, $reports),
            ),
            new Contender(
                'laravel',
                static function () use ($tasks): void {
                    Laravel::empty(Admin::pdo());
                    (new Laravel(Admin::pdo()))->bulkMany(Numbers::take($tasks), $tasks);
                },
                function (int $w): callable {
                    $laravel = Laravel::connect($this->server);
                    return static fn (): array => $laravel->drain();
                },
                static fn (array $reports) => Laravel::checkDrained(Admin::pdo(), $tasks, $reports),
            ),
        ]);
    }

    /**
     * Enqueue 500 tasks per call, one producer: ours enqueueBatch, the floor's multi-row INSERT,
     * Laravel's Queue::bulk (also one multi-row INSERT).
     *
     * @return array<string, array{rate: Figure, cpu: ?Figure}> keys ours, floor, laravel
     */
    public function enqueueBatch(): array
    {
        $total = $this->tasks;
        $first = 0;
        return $this->compare('enqueue in batches of 500, 1 producer', 1, $total, [
            new Contender(
                'ours',
                function () use (&$first, $total): void {
                    Ours::empty($this->withHistory);
                    $first = Numbers::take($total);
                },
                function (int $w) use (&$first, $total): callable {
                    $tm = Ours::client($this->server->libraryConfig(true));
                    return static fn (): array => Ours::enqueueBatches($tm, $first, $total);
                },
                fn (array $reports) => Ours::checkEnqueued($this->withHistory, $total),
            ),
            new Contender(
                'floor',
                static function () use (&$first, $total): void {
                    Floor::empty(Admin::pdo());
                    $first = Numbers::take($total);
                },
                function (int $w) use (&$first, $total): callable {
                    $floor = Floor::connect($this->server);
                    return static fn (): array => $floor->insertBatches($first, $total);
                },
                static fn (array $reports) => Floor::checkEnqueued(Admin::pdo(), $total),
            ),
            new Contender(
                'laravel',
                static function () use (&$first, $total): void {
                    Laravel::empty(Admin::pdo());
                    $first = Numbers::take($total);
                },
                function (int $w) use (&$first, $total): callable {
                    $laravel = Laravel::connect($this->server);
                    return static fn (): array => $laravel->bulkMany($first, $total);
                },
                static fn (array $reports) => Laravel::checkPushed(Admin::pdo(), $total),
            ),
        ]);
    }

    /** Leaves the queue empty (e.g. before the end, so that the run ends as it began). */
    public function emptyAll(): void
    {
        Ours::empty($this->withHistory);
        Floor::empty(Admin::pdo());
        Laravel::empty(Admin::pdo());
    }
}
