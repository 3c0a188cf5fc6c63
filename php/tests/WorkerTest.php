<?php

declare(strict_types=1);

namespace TaskManager\Tests;

use TaskManager\TaskManager;
use TaskManager\Worker;

/**
 * bin/taskmanager-worker as real processes against the real database: signals, limits,
 * failures, heartbeats, timeouts and two workers on one queue. Every wait polls the database
 * or the process with a deadline.
 *
 * @requires extension pcntl
 */
final class WorkerTest extends TestCase
{
    private const BIN = __DIR__ . '/../bin/taskmanager-worker';
    private const BOOTSTRAP = __DIR__ . '/fixtures/worker-bootstrap.php';

    /** @var list<array{proc: resource, stderr: string, exit: ?int, exitedAt: ?float}> */
    private array $workers = [];
    /** @var list<string> */
    private array $files = [];

    protected function tearDown(): void
    {
        // A test that failed half-way leaves no worker behind.
        foreach ($this->workers as $w) {
            if (proc_get_status($w['proc'])['running']) {
                proc_terminate($w['proc'], 9);
            }
            proc_close($w['proc']);
        }
        foreach ($this->files as $file) {
            @unlink($file);
        }
        parent::tearDown();
    }

    public function testSigtermMidTaskFinishesTheTaskThenExitsZero(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $long = $tm->enqueue($type, ['action' => 'sleep', 'seconds' => 1.5], ['priority' => 9])['id'];
        $next = $tm->enqueue($type, ['action' => 'ok'])['id'];
        $w = $this->startWorker([$type], ['--sleep=0.2']);
        $this->waitFor(fn () => $tm->getTask($long)['status'] === 'claimed', 'the worker claims the long task');

        proc_terminate($this->workers[$w]['proc'], SIGTERM);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        $this->assertSame('completed', $tm->getTask($long)['status'], $this->stderr($w));
        $this->assertSame('pending', $tm->getTask($next)['status'], 'nothing is taken after SIGTERM');
        $this->assertStringContainsString('SIGTERM received', $this->stderr($w));
        $this->assertMatchesRegularExpression("/\\] \\Q$type\\E #$long done in \\d+(ms|\\.\\ds)/", $this->stderr($w));
    }

    public function testSigintWhileIdleAndMaxTimeExitZeroWithinTheLongestWait(): void
    {
        $type = $this->newType();
        // --sleep=30 asks for waits longer than a worker takes: one claim waits 5 s at most.
        $launched = microtime(true);
        $idle = $this->startWorker([$type], ['--sleep=30']);
        $timed = $this->startWorker([$type], ['--max-time=1', '--sleep=30']);
        // --max-time cuts the wait short: the worker leaves at 1 s, not at the end of a 5 s wait.
        $this->assertSame(0, $this->waitExit($timed), $this->stderr($timed));
        $this->assertStringContainsString('stopping (--max-time=1 reached)', $this->stderr($timed));
        $took = $this->exitedAt($timed) - $launched;
        $this->assertLessThan(3.5, $took, "the worker with --max-time=1 exited {$took}s after its launch");

        // Idle on an empty queue, inside a waiting claim: PHP handles SIGINT when it returns.
        $this->waitFor(fn () => str_contains($this->stderr($idle), 'started for'), 'the worker starts');
        $signalled = microtime(true);
        proc_terminate($this->workers[$idle]['proc'], SIGINT);
        $this->assertSame(0, $this->waitExit($idle, 15), $this->stderr($idle));
        $took = microtime(true) - $signalled;
        $this->assertLessThan(Worker::MAX_WAIT + 2, $took, "SIGINT ended the idle worker {$took}s after it was sent");
        $this->assertStringContainsString('stopping (SIGINT): 0 done, 0 failed', $this->stderr($idle));
    }

    public function testAnIdleWorkerTakesAnotherProcesssTaskWithinASecondAndSigtermEndsItWithinItsWait(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $w = $this->startWorker([$type], ['--sleep=30']);
        $this->waitFor(fn () => str_contains($this->stderr($w), 'started for'), 'the worker starts');
        // The scenario rather than a synchronisation: a worker idle for 6.5 s has been through
        // one whole claim wait (5 s) and into the next, and a worker polling with the backoff
        // it used to have (0.1 s doubling up to --sleep) would next look at 12.7 s.
        $idleFrom = microtime(true);
        $this->waitFor(fn () => microtime(true) - $idleFrom >= 6.5, 'the worker has idled 6.5 s');

        // This test's process is not the worker's: the worker finds the task by its next try.
        $started = $this->tempFile();
        $enqueued = microtime(true);
        $id = $tm->enqueue($type, ['action' => 'ok', 'started' => $started])['id'];
        $this->waitFor(fn () => preg_match('/^\d+\.\d{6}$/', (string) file_get_contents($started)) === 1, 'the handler starts');
        $latency = (float) file_get_contents($started) - $enqueued;
        $this->assertLessThan(2.0, $latency, "the handler started {$latency}s after the enqueue; the wait tries at least once a second");

        // Idle again, waiting in a claim from the moment the task is logged done.
        $this->waitFor(fn () => str_contains($this->stderr($w), "#$id done in"), 'the task is done');
        $signalled = microtime(true);
        proc_terminate($this->workers[$w]['proc'], SIGTERM);
        $this->assertSame(0, $this->waitExit($w, 15), $this->stderr($w));
        $took = microtime(true) - $signalled;
        $this->assertLessThan(Worker::MAX_WAIT + 2, $took, "SIGTERM ended the idle worker {$took}s after it was sent");
        $this->assertStringContainsString('stopping (SIGTERM): 1 done, 0 failed', $this->stderr($w));
        $this->assertSame('completed', $tm->getTask($id)['status']);
    }

    public function testMemoryLimitExitsZeroAfterTheTaskInHand(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $ids = [];
        foreach ([1, 2] as $n) {
            $ids[] = $tm->enqueue($type, ['action' => 'hog', 'mb' => 48, 'n' => $n])['id'];
        }
        $w = $this->startWorker([$type], ['--memory=32']);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        $this->assertSame(['completed', 'pending'], $this->statuses($ids), $this->stderr($w));
        $this->assertMatchesRegularExpression('/stopping \(memory \d+ MB is over --memory=32\): 1 done, 0 failed/', $this->stderr($w));
    }

    public function testMaxJobsStopsAfterThatManyAndClaimsNoMore(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $ids = [];
        for ($n = 0; $n < 5; $n++) {
            $ids[] = $tm->enqueue($type, ['action' => 'ok', 'n' => $n], ['priority' => 10 - $n])['id'];
        }
        $w = $this->startWorker([$type], ['--max-jobs=2']);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        // The last complete must not have claimed a third task on the way out.
        $this->assertSame(['completed', 'completed', 'pending', 'pending', 'pending'], $this->statuses($ids), $this->stderr($w));
        $this->assertSame(0, $tm->getTask($ids[2])['attempts'], 'the third task was never claimed');
        $this->assertStringContainsString('--max-jobs=2 reached', $this->stderr($w));
    }

    public function testAThrowingHandlerFailsTheTaskForARetryWithClassAndMessage(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $message = 'no such customer ' . bin2hex(random_bytes(3));
        $id = $tm->enqueue($type, ['action' => 'throw', 'message' => $message], ['max_attempts' => 3])['id'];
        $w = $this->startWorker([$type], ['--once']);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));

        $task = $tm->getTask($id);
        $this->assertSame('pending', $task['status'], 'retried, not dead: attempts remain');
        $this->assertSame(1, $task['attempts']);
        $this->assertSame("DomainException: $message", $task['error_message']);
        $this->assertStringContainsString("#$id failed in", $this->stderr($w));
        $this->assertStringContainsString('(attempt 1 of 3)', $this->stderr($w));
    }

    public function testPermanentErrorRetryLaterAndProgress(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $permanent = $tm->enqueue($type, ['action' => 'permanent'], ['max_attempts' => 5, 'priority' => 3])['id'];
        $later = $tm->enqueue($type, ['action' => 'later'], ['max_attempts' => 5, 'priority' => 2])['id'];
        $progress = $tm->enqueue($type, ['action' => 'progress'], ['priority' => 1])['id'];
        $w = $this->startWorker([$type], ['--stop-when-empty']);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));

        $task = $tm->getTask($permanent);
        $this->assertSame(['failed', 1], [$task['status'], $task['attempts']], 'no retry despite attempts left');
        $this->assertSame('TaskManager\PermanentError: cannot ever work', $task['error_message']);
        $task = $tm->getTask($later);
        $this->assertSame('pending', $task['status']);
        $this->assertSame('TaskManager\RetryLater: the remote side is down', $task['error_message']);
        $delay = strtotime($task['run_at']) - strtotime($task['created_at']);
        $this->assertGreaterThanOrEqual(110, $delay, 'retried after its own 120 s, not the short backoff');
        $this->assertContains('progress', array_column($tm->history($progress), 'status_change'));
        $this->assertSame('completed', $tm->getTask($progress)['status']);
    }

    public function testWithoutPcntlItSaysSoAndStillWorks(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['action' => 'ok'])['id'];
        $w = $this->startWorker([$type], ['--once'], [], ['-d', 'disable_functions=pcntl_signal,pcntl_async_signals,pcntl_alarm']);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        $this->assertStringContainsString('warning: the pcntl extension is missing: no graceful shutdown', $this->stderr($w));
        $this->assertSame('completed', $tm->getTask($id)['status']);
    }

    public function testTheExampleBootstrapRunsTheProducersTasks(): void
    {
        $dir = dirname(__DIR__) . '/examples';
        $env = ['TASKMANAGER_DATABASE_URL' => $this->databaseUrl()];
        $producer = proc_open([PHP_BINARY, "$dir/producer.php", '3'], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env + getenv());
        $produced = stream_get_contents($pipes[1]) . stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($producer), $produced);
        $w = $this->start(["--bootstrap=$dir/handlers.php", '--stop-when-empty'], []);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        $this->assertSame(3, preg_match_all('/report\.render #\d+ done in/', $this->stderr($w)), $this->stderr($w));
    }

    public function testHeartbeatsKeepTheLeaseOfAHandlerThatRunsPastIt(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['action' => 'sleep', 'seconds' => 7, 'db' => true])['id'];
        // A 3-second lease renewed every second, for a handler that runs more than two leases
        // and calls the library all the while (the ticks land inside its calls too).
        $w = $this->startWorker([$type], ['--lease=3', '--once', '--worker-id=keeper']);
        $this->waitFor(fn () => $tm->getTask($id)['status'] === 'claimed', 'the worker claims the task');
        // Meanwhile another worker keeps trying: were the lease to lapse, its claim would
        // recover the task and take it.
        $stolen = [];
        $this->waitFor(function () use ($tm, $type, $id, &$stolen): bool {
            $stolen = array_merge($stolen, $tm->claim('thief', ['types' => [$type]]));
            return $tm->getTask($id)['status'] !== 'claimed';
        }, 'the long task finishes', 30);

        $this->assertSame([], $stolen, 'nobody else claimed the task');
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        $task = $tm->getTask($id);
        $this->assertSame('completed', $task['status'], $this->stderr($w));
        $this->assertSame('keeper', $task['claimed_by']);
        $this->assertSame(1, $task['attempts']);
        $changes = array_column($tm->history($id), 'status_change');
        $this->assertNotContains('lease_expired', $changes);
        $this->assertSame(1, count(array_keys($changes, 'claimed', true)));
    }

    public function testTwoWorkersShareOneQueueAndRunEachTaskOnce(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $log = $this->tempFile();
        $a = $this->startWorker([$type], ['--sleep=0.2'], ['TM_WORKER_LOG' => $log]);
        $b = $this->startWorker([$type], ['--sleep=0.2'], ['TM_WORKER_LOG' => $log]);
        // Both poll before the work arrives, so both get a share of it.
        $this->waitFor(fn () => str_contains($this->stderr($a), 'started for') && str_contains($this->stderr($b), 'started for'), 'both workers start');
        $items = [];
        for ($n = 0; $n < 30; $n++) {
            $items[] = ['type' => $type, 'params' => ['action' => 'sleep', 'seconds' => 0.05, 'n' => $n]];
        }
        $ids = array_column($tm->enqueueBatch($items), 'id');
        $this->waitFor(fn () => $this->statuses($ids) === array_fill(0, 30, 'completed'), 'all 30 tasks complete', 60);
        proc_terminate($this->workers[$a]['proc'], SIGTERM);
        proc_terminate($this->workers[$b]['proc'], SIGTERM);
        $this->assertSame(0, $this->waitExit($a), $this->stderr($a));
        $this->assertSame(0, $this->waitExit($b), $this->stderr($b));

        $runs = array_map(static fn (string $line) => explode(' ', $line), file($log, FILE_IGNORE_NEW_LINES));
        $ran = array_map('intval', array_column($runs, 0));
        sort($ran);
        $expected = $ids;
        sort($expected);
        $this->assertSame($expected, $ran, 'every task ran exactly once');
        $this->assertCount(2, array_unique(array_column($runs, 1)), 'both workers ran tasks');
        foreach ($ids as $id) {
            $this->assertSame(1, $tm->getTask($id)['attempts']);
        }
    }

    public function testTimeoutStopsTheHandlerAndFailsTheTask(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['action' => 'sleep', 'seconds' => 60], ['max_attempts' => 3])['id'];
        $began = microtime(true);
        $w = $this->startWorker([$type], ['--timeout=1', '--once']);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        $this->assertLessThan(30, microtime(true) - $began, 'the 60-second handler was cut short');
        $task = $tm->getTask($id);
        $this->assertSame('pending', $task['status']);
        $this->assertSame(1, $task['attempts']);
        $this->assertStringStartsWith('TaskManager\HandlerTimeout: ', $task['error_message']);
        $this->assertStringContainsString('ran longer than the timeout of 1s', $task['error_message']);
    }

    public function testAHandlerThatIgnoresItsTimeoutEndsTheProcessAndTheTaskFails(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['action' => 'swallow', 'seconds' => 60])['id'];
        $next = $tm->enqueue($type, ['action' => 'ok'], ['priority' => -1])['id'];
        $w = $this->startWorker([$type], ['--timeout=1']);
        $this->assertSame(1, $this->waitExit($w), $this->stderr($w));
        $this->assertStringContainsString('ignored its timeout', $this->stderr($w));
        $task = $tm->getTask($id);
        $this->assertSame('pending', $task['status']);
        $this->assertStringStartsWith('TaskManager\HandlerTimeout: ', $task['error_message']);
        $this->assertSame('pending', $tm->getTask($next)['status']);
        $this->assertSame(0, $tm->getTask($next)['attempts']);
    }

    public function testEveryFormOfHandlerAndTheConfigureStyleOfBootstrap(): void
    {
        $tm = TaskManager::getInstance();
        $types = [$this->newType(), $this->newType(), $this->newType()];
        $ids = [];
        foreach ($types as $n => $type) {
            $ids[] = $tm->enqueue($type, ['n' => $n])['id'];
        }
        $w = $this->startWorker($types, ['--stop-when-empty'], ['TM_WORKER_MODE' => 'forms']);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        $this->assertSame(['form' => 'closure', 'n' => 0], $tm->getTask($ids[0])['result']);
        $this->assertSame(['form' => 'handle()', 'n' => 1], $tm->getTask($ids[1])['result']);
        $this->assertSame(['form' => 'handle()', 'n' => 2], $tm->getTask($ids[2])['result']);
        $this->assertStringContainsString('stopping (the queue is empty): 3 done, 0 failed', $this->stderr($w));
    }

    public function testTypesNarrowTheWorkAndOnceOnAnEmptyQueueExitsZero(): void
    {
        $tm = TaskManager::getInstance();
        [$mine, $other] = [$this->newType(), $this->newType()];
        $skipped = $tm->enqueue($other, ['action' => 'ok'])['id'];
        $w = $this->startWorker([$mine, $other], ['--once', "--types=$mine"]);
        $this->assertSame(0, $this->waitExit($w), $this->stderr($w));
        $this->assertSame('pending', $tm->getTask($skipped)['status']);
        $this->assertStringContainsString('stopping (the queue is empty): 0 done', $this->stderr($w));
    }

    /** @return iterable<string, array{list<string>, array<string, string>, string}> */
    public static function badInvocations(): iterable
    {
        $boot = '--bootstrap=' . self::BOOTSTRAP;
        yield 'no bootstrap' => [['--once'], [], '--bootstrap=FILE is required'];
        yield 'missing bootstrap file' => [['--bootstrap=/nonexistent/boot.php'], [], "cannot read the file '/nonexistent/boot.php'"];
        yield 'unknown option' => [[$boot, '--queue=default'], [], 'unknown option --queue'];
        yield 'not a number' => [[$boot, '--max-jobs=ten'], [], "--max-jobs must be a whole number, got 'ten'"];
        yield 'negative sleep' => [[$boot, '--sleep=-1'], [], "--sleep must be a number of seconds, got '-1'"];
        yield 'zero lease' => [[$boot, '--lease=0'], [], 'worker option lease must be a whole number >= 1, got 0'];
        yield 'flag with value' => [[$boot, '--once=yes'], [], '--once takes no value'];
        yield 'value missing' => [[$boot, '--memory'], [], '--memory needs a value'];
        yield 'no handlers' => [[$boot], ['TM_WORKER_MODE' => 'empty'], 'registered no handlers'];
        yield 'type without handler' => [[$boot, '--types=nobody.handles.this'], [], 'no handler for nobody.handles.this'];
    }

    /**
     * @dataProvider badInvocations
     * @param list<string> $args
     * @param array<string, string> $env
     */
    public function testBadOptionsAndBootstrapsExitTwoWithAMessage(array $args, array $env, string $message): void
    {
        $w = $this->start($args, ['TM_WORKER_TYPES' => 'php.worker.bad'] + $env);
        $this->assertSame(2, $this->waitExit($w), $this->stderr($w));
        $this->assertStringContainsString($message, $this->stderr($w));
    }

    public function testUnreachableDatabaseExitsOneWithTheLibrarysMessage(): void
    {
        $w = $this->start(['--bootstrap=' . self::BOOTSTRAP, '--once'], [
            'TM_WORKER_TYPES' => 'php.worker.db',
            'TASKMANAGER_DATABASE_URL' => 'mysql://nobody@127.0.0.1:1/none',
        ]);
        $this->assertSame(1, $this->waitExit($w), $this->stderr($w));
        $this->assertStringContainsString('taskmanager-worker: TaskManager\Exception\\', $this->stderr($w));
    }

    /**
     * Starts bin/taskmanager-worker on the suite's database with the fixture bootstrap.
     *
     * @param list<string> $types
     * @param list<string> $args
     * @param array<string, string> $env
     * @param list<string> $php options for the PHP binary
     */
    private function startWorker(array $types, array $args, array $env = [], array $php = []): int
    {
        return $this->start(['--bootstrap=' . self::BOOTSTRAP, ...$args], ['TM_WORKER_TYPES' => implode(',', $types)] + $env, $php);
    }

    /**
     * @param list<string> $args
     * @param array<string, string> $env
     * @param list<string> $php options for the PHP binary
     */
    private function start(array $args, array $env, array $php = []): int
    {
        $env += ['TASKMANAGER_DATABASE_URL' => $this->databaseUrl()];
        $stderr = $this->tempFile();
        $proc = proc_open(
            [PHP_BINARY, '-d', 'memory_limit=512M', ...$php, self::BIN, ...$args],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', $stderr, 'w']],
            $pipes,
            null,
            $env + getenv()
        );
        $this->assertIsResource($proc);
        $this->workers[] = ['proc' => $proc, 'stderr' => $stderr, 'exit' => null, 'exitedAt' => null];
        return array_key_last($this->workers);
    }

    private function waitExit(int $w, float $seconds = 30): int
    {
        $this->waitFor(function () use ($w): bool {
            $status = proc_get_status($this->workers[$w]['proc']);
            // The exit code is reported once only, on the first call after the exit.
            if (!$status['running']) {
                $this->workers[$w]['exit'] ??= $status['exitcode'];
                $this->workers[$w]['exitedAt'] ??= microtime(true);
            }
            return !$status['running'];
        }, "worker $w exits", $seconds);
        return $this->workers[$w]['exit'];
    }

    private function waitFor(callable $condition, string $what, float $seconds = 20): void
    {
        $deadline = microtime(true) + $seconds;
        while (!$condition()) {
            if (microtime(true) > $deadline) {
                $logs = implode("\n", array_map(fn (array $w) => (string) file_get_contents($w['stderr']), $this->workers));
                $this->fail("timed out after {$seconds}s waiting until $what; worker output:\n$logs");
            }
            usleep(50_000); // the polling interval, not a wait for the event
        }
    }

    /** When waitExit() saw worker $w gone (within its 50 ms polling). */
    private function exitedAt(int $w): float
    {
        return $this->workers[$w]['exitedAt'] ?? $this->fail("worker $w was not seen to exit");
    }

    private function stderr(int $w): string
    {
        return (string) file_get_contents($this->workers[$w]['stderr']);
    }

    /** @param list<int> $ids @return list<string> */
    private function statuses(array $ids): array
    {
        $tm = TaskManager::getInstance();
        return array_map(static fn (int $id) => $tm->getTask($id)['status'], $ids);
    }

    private function tempFile(): string
    {
        return $this->files[] = tempnam(sys_get_temp_dir(), 'tm-worker-');
    }
}
