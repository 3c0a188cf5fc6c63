<?php

declare(strict_types=1);

namespace TaskManager;

use TaskManager\Exception\ConnectionException;
use TaskManager\Exception\InvalidArgumentException as ArgumentException;
use TaskManager\Exception\LeaseLostException;
use TaskManager\Exception\TaskManagerException;

/**
 * A long-running worker: claims tasks of the types it has handlers for, runs the handler,
 * completes the task with the handler's return value (taking the next task in the same round
 * trip), and fails it for a retry when the handler throws.
 *
 *     $worker = new Worker(options: ['lease' => 60, 'max_jobs' => 1000]);
 *     $worker->register('email.send', fn (Task $task) => sendMail($task->params));
 *     $worker->register('report.render', RenderReport::class);   // a class with handle(Task)
 *     exit($worker->run());
 *
 * With pcntl, a SIGALRM tick heartbeats every lease/3 seconds while a handler runs, so a long
 * handler keeps its lease; --timeout is enforced by the same alarm; SIGTERM and SIGINT let the
 * task in hand finish, then run() returns 0. A PHP fatal error or SIGKILL ends the process
 * with the task still claimed: its lease runs out and the library retries it then (the attempt
 * counts). The bin/taskmanager-worker command wraps this class.
 *
 * On an empty queue the worker waits inside its claim (the library's wait_seconds) rather than
 * sleeping between polls: a task is taken as soon as it is claimable (at once when this process
 * enqueued it, within a second from another process or host). PHP runs a signal's handler only
 * after the library call in progress returns, so one claim waits 'sleep' seconds and never more
 * than MAX_WAIT: an idle worker honours SIGTERM and SIGINT within that time.
 */
final class Worker
{
    /** The settings run() uses, with their defaults; the command's options map onto them. */
    public const DEFAULTS = [
        'worker_id' => null,          // hostname:pid
        'types' => null,              // every type with a handler
        'lease' => 60,                // seconds; heartbeats extend it while a handler runs
        'sleep' => 3.0,               // how long one claim waits on an empty queue (at most MAX_WAIT)
        'max_jobs' => 0,              // 0: no limit
        'max_time' => 0,              // seconds; 0: no limit
        'memory' => 128,              // MB of PHP memory after which the worker exits
        'timeout' => 0,               // seconds a handler may run; 0: no limit
        'once' => false,              // one task (or an empty queue), then exit
        'stop_when_empty' => false,   // exit once the queue has nothing runnable
    ];

    /** Seconds a handler that swallowed HandlerTimeout keeps running before the process exits. */
    private const TIMEOUT_GRACE = 2;
    /**
     * The longest wait of one claim, in seconds, whatever 'sleep' says: the bound on how long an
     * idle worker takes to honour SIGTERM or SIGINT (delivered once the claim returns).
     */
    public const MAX_WAIT = 5.0;
    /** The pause between claims that do not wait ('sleep' 0): a poll loop must not spin a core. */
    private const POLL_PAUSE = 0.01;
    /** Error texts longer than this are cut: the message matters, not a megabyte of it. */
    private const MAX_ERROR = 8000;

    /** @var array<string, \Closure(Task): mixed> */
    private array $handlers = [];
    /** @var array<string, mixed> */
    private array $options;
    private \Closure $log;
    private ?TaskManager $tm;

    private bool $signals = false;
    private bool $stop = false;
    private ?string $stopReason = null;

    // The task a handler is running, for the SIGALRM ticks.
    private ?Task $current = null;
    private float $nextBeat = 0.0;
    private ?float $deadline = null;
    private bool $timedOut = false;
    private bool $lost = false;
    private int $began = 0;

    private int $done = 0;
    private int $failed = 0;

    /** @param array<string, mixed> $options keys of DEFAULTS */
    public function __construct(?TaskManager $tm = null, array $options = [])
    {
        $this->tm = $tm;
        $this->options = self::DEFAULTS;
        $this->configure($options);
        $this->log = static function (string $line): void {
            fwrite(STDERR, '[' . date('Y-m-d H:i:s') . "] $line\n");
        };
    }

    /**
     * Changes settings (keys of DEFAULTS); a bootstrap file may call it.
     *
     * @param array<string, mixed> $options
     */
    public function configure(array $options): self
    {
        foreach ($options as $key => $value) {
            if (!array_key_exists($key, self::DEFAULTS)) {
                throw new \InvalidArgumentException("unknown worker option '$key'; known: " . implode(', ', array_keys(self::DEFAULTS)));
            }
            $this->options[$key] = self::checkOption($key, $value);
        }
        return $this;
    }

    /** @return array<string, mixed> the settings in force */
    public function options(): array
    {
        return $this->options;
    }

    /**
     * Sets the handler for a task type: a callable taking a Task, an object with a
     * handle(Task) method, or the name of a class with one (created here, without arguments).
     * The handler's return value becomes the task's result.
     */
    public function register(string $type, callable|object|string $handler): self
    {
        if ($type === '') {
            throw new \InvalidArgumentException('a handler needs a task type name');
        }
        $this->handlers[$type] = self::toClosure($type, $handler);
        return $this;
    }

    /**
     * register() for each type name => handler.
     *
     * @param array<mixed> $handlers
     */
    public function registerAll(array $handlers): self
    {
        foreach ($handlers as $type => $handler) {
            if (!is_string($type)) {
                throw new \InvalidArgumentException('handlers are given as type name => handler; got the key ' . var_export($type, true));
            }
            $this->register($type, $handler);
        }
        return $this;
    }

    /** @return list<string> the types that have a handler */
    public function types(): array
    {
        return array_keys($this->handlers);
    }

    /** Where log lines go (default: stderr with a timestamp). @param \Closure(string): void $log */
    public function setLogger(\Closure $log): self
    {
        $this->log = $log;
        return $this;
    }

    /** Asks run() to return after the task in hand (what SIGTERM and SIGINT do). */
    public function stop(string $reason = 'stop() called'): void
    {
        $this->stop = true;
        $this->stopReason ??= $reason;
    }

    /**
     * Works until a stop condition (a signal, --once, --max-jobs, --max-time, --memory, an
     * empty queue with stop_when_empty). Returns the process exit code: 0.
     */
    public function run(): int
    {
        $types = $this->options['types'] ?? $this->types();
        if ($types === []) {
            throw new \LogicException('no handlers registered: register() at least one task type');
        }
        $missing = array_diff($types, $this->types());
        if ($missing !== []) {
            throw new \InvalidArgumentException(sprintf(
                'no handler for %s; handlers exist for: %s',
                implode(', ', $missing),
                implode(', ', $this->types()) ?: 'nothing'
            ));
        }
        $tm = $this->tm ??= TaskManager::getInstance();
        $workerId = $this->options['worker_id'] ?? (gethostname() . ':' . getmypid());
        $this->signals = $this->installSignals();
        if (!$this->signals) {
            $this->say('warning: the pcntl extension is missing: no graceful shutdown on SIGTERM/SIGINT, '
                . 'no heartbeats (a handler must finish within --lease) and no --timeout');
        }
        $lease = $this->options['lease'];
        $this->say(sprintf(
            'worker %s started for %s (lease %ds%s%s, memory limit %d MB)',
            $workerId,
            implode(', ', $types),
            $lease,
            $this->signals ? sprintf(', heartbeat every %ds', self::beatEvery($lease)) : '',
            $this->options['timeout'] > 0 ? ", timeout {$this->options['timeout']}s" : '',
            $this->options['memory']
        ));

        $claim = ['types' => array_values($types), 'limit' => 1, 'lease_seconds' => $lease];
        $started = microtime(true);
        $jobs = 0;
        $next = null;
        try {
            while (true) {
                if ($next !== null && $this->stopReason($jobs, $started) !== null) {
                    // A signal (or --max-time) arrived while a claim or completeAndClaim() was
                    // taking this one: hand it back rather than start a task after being told to
                    // stop.
                    $this->release($tm, $next);
                    $next = null;
                }
                if ($next === null) {
                    if (($reason = $this->stopReason($jobs, $started)) !== null) {
                        break;
                    }
                    // --once and --stop-when-empty ask whether anything is runnable now: no wait.
                    $empties = $this->options['once'] || $this->options['stop_when_empty'];
                    $wait = $empties ? 0.0 : $this->claimWait($started);
                    try {
                        $next = $tm->claim($workerId, $wait > 0 ? $claim + ['wait_seconds' => $wait] : $claim)[0] ?? null;
                    } catch (ConnectionException $e) {
                        $this->say("database unavailable, retrying: {$e->getMessage()}");
                        $this->pause(max(1.0, $this->options['sleep']));
                        continue;
                    }
                    if ($next === null && $empties) {
                        $reason = 'the queue is empty';
                        break;
                    }
                    if ($next === null && $wait <= 0) {
                        $this->pause(self::POLL_PAUSE);
                    }
                    // Back to the top: a signal that came during the wait has been handled by
                    // now, and a task the claim took after it is handed back, not started.
                    continue;
                }
                $jobs++;
                $next = $this->process($tm, $next, $workerId, $claim, $jobs, $started);
            }
        } finally {
            $this->disarm();
            if ($this->signals) {
                pcntl_signal(SIGALRM, SIG_DFL);
            }
        }
        $this->say(sprintf('worker %s stopping (%s): %d done, %d failed', $workerId, $reason, $this->done, $this->failed));
        return 0;
    }

    /**
     * Runs one task to its end. Returns the next task when completeAndClaim() took one.
     *
     * @param array<string, mixed> $row
     * @param array<string, mixed> $claim
     * @return array<string, mixed>|null
     */
    private function process(TaskManager $tm, array $row, string $workerId, array $claim, int $jobs, float $started): ?array
    {
        $task = Task::fromArray($row, fn (int $percent) => $this->beat($tm, $percent));
        $began = $this->began = hrtime(true);
        $this->current = $task;
        $this->lost = false;
        $this->timedOut = false;
        $this->nextBeat = microtime(true) + self::beatEvery($this->options['lease']);
        $this->deadline = $this->options['timeout'] > 0 ? microtime(true) + $this->options['timeout'] : null;
        $this->arm();
        try {
            $result = ($this->handlers[$task->type])($task);
            $this->disarm();
        } catch (\Throwable $e) {
            $this->disarm();
            $this->fail($tm, $task, $e, $began);
            return null;
        }
        if ($this->timedOut) {
            // The handler caught the HandlerTimeout and returned: the task still failed.
            $this->fail($tm, $task, new HandlerTimeout($this->timeoutMessage($task)), $began);
            return null;
        }
        if ($this->lost) {
            $this->failed++;
            $this->say(sprintf('%s #%d lost its lease while running; result dropped (another worker may own it)', $task->type, $task->id));
            return null;
        }
        // Take the next task in the same round trip unless this one is the last. This step
        // does not wait (the completion is logged as soon as it is recorded); when it finds
        // nothing, run()'s next claim waits.
        $claimNext = $this->stopReason($jobs, $started) === null;
        for ($try = 1; ; $try++) {
            try {
                // A retry completes only: had the first call committed before the connection
                // broke, claiming again would strand the task it took until its lease ran out.
                if ($claimNext && $try === 1) {
                    $step = $tm->completeAndClaim($task->id, $task->leaseToken, $result, $workerId, $claim);
                    $next = $step['claimed'][0] ?? null;
                } else {
                    $tm->complete($task->id, $task->leaseToken, $result);
                    $next = null;
                }
                $this->done++;
                $this->say(sprintf('%s #%d done in %s', $task->type, $task->id, self::elapsed($began)));
                return $next;
            } catch (LeaseLostException) {
                $this->failed++;
                $this->say(sprintf('%s #%d: lease lost before completion; result dropped (another worker owns it)', $task->type, $task->id));
                return null;
            } catch (ArgumentException $e) {
                // The result cannot be stored (not JSON-encodable, too large): the task failed.
                $this->fail($tm, $task, $e, $began);
                return null;
            } catch (ConnectionException $e) {
                // Repeating a complete with the same token is safe, even after an unknown outcome.
                if ($try >= 3) {
                    $this->failed++;
                    $this->say(sprintf('%s #%d: could not record completion (%s); left to its lease', $task->type, $task->id, $e->getMessage()));
                    return null;
                }
                $this->pause(1.0);
            }
        }
    }

    private function fail(TaskManager $tm, Task $task, \Throwable $error, int $began): void
    {
        $this->failed++;
        $message = get_class($error) . ': ' . $error->getMessage();
        if (strlen($message) > self::MAX_ERROR) {
            $message = substr($message, 0, self::MAX_ERROR) . '...';
        }
        $took = self::elapsed($began);
        if ($this->lost) {
            $this->say(sprintf('%s #%d failed in %s after losing its lease: %s', $task->type, $task->id, $took, $message));
            return;
        }
        $options = match (true) {
            $error instanceof PermanentError => ['retry' => false],
            $error instanceof RetryLater => ['retry' => true, 'retry_in_seconds' => $error->seconds],
            default => ['retry' => true],
        };
        try {
            $outcome = $tm->fail($task->id, $task->leaseToken, $message, $options);
            $this->say(sprintf(
                '%s #%d failed in %s: %s; now %s (attempt %d of %d)',
                $task->type,
                $task->id,
                $took,
                $message,
                $outcome['status'] === 'pending' ? "pending, retry at {$outcome['run_at']}" : $outcome['status'],
                $outcome['attempts'],
                $outcome['max_attempts']
            ));
        } catch (LeaseLostException) {
            $this->say(sprintf('%s #%d failed in %s (%s) but its lease was lost; nothing recorded', $task->type, $task->id, $took, $message));
        } catch (TaskManagerException $e) {
            $this->say(sprintf('%s #%d failed in %s (%s); recording it failed too (%s): left to its lease', $task->type, $task->id, $took, $message, $e->getMessage()));
        }
    }

    /** @param array<string, mixed> $row a claimed task not yet started */
    private function release(TaskManager $tm, array $row): void
    {
        try {
            $tm->release((int) $row['id'], (string) $row['lease_token']);
            $this->say(sprintf('%s #%d released unstarted', $row['type'], $row['id']));
        } catch (TaskManagerException $e) {
            $this->say(sprintf('%s #%d could not be released (%s): left to its lease', $row['type'], $row['id'], $e->getMessage()));
        }
    }

    /** Extends the lease of the task in hand (and records progress when given). */
    private function beat(TaskManager $tm, ?int $progress = null): void
    {
        $task = $this->current;
        if ($task === null || $this->lost) {
            return;
        }
        $this->nextBeat = microtime(true) + self::beatEvery($this->options['lease']);
        $options = ['lease_seconds' => $this->options['lease']] + ($progress === null ? [] : ['progress' => $progress]);
        try {
            $tm->heartbeat($task->id, $task->leaseToken, $options);
        } catch (LeaseLostException) {
            $this->lost = true;
            $this->say(sprintf('%s #%d: lease lost (heartbeat refused); its result will be dropped', $task->type, $task->id));
        } catch (TaskManagerException $e) {
            // Keep going: the lease may well hold until the next tick.
            $this->say(sprintf('%s #%d: heartbeat failed: %s', $task->type, $task->id, $e->getMessage()));
        }
    }

    private function installSignals(): bool
    {
        if (!function_exists('pcntl_signal') || !function_exists('pcntl_async_signals') || !function_exists('pcntl_alarm')) {
            return false;
        }
        // Async: handlers run between any two opcodes, also inside a running task handler.
        pcntl_async_signals(true);
        foreach ([SIGTERM => 'SIGTERM', SIGINT => 'SIGINT'] as $signal => $name) {
            pcntl_signal($signal, function () use ($name): void {
                if (!$this->stop) {
                    $this->say("$name received: stopping after the current task");
                }
                $this->stop($name);
            });
        }
        pcntl_signal(SIGALRM, fn () => $this->onAlarm());
        return true;
    }

    /**
     * The SIGALRM tick while a handler runs: a heartbeat when one is due, HandlerTimeout when
     * the handler passes its deadline, and exit(1) when it is still running TIMEOUT_GRACE
     * seconds after that (it caught the HandlerTimeout and went on).
     */
    private function onAlarm(): void
    {
        $task = $this->current;
        if ($task === null) {
            return;
        }
        $tm = $this->tm;
        $now = microtime(true);
        // alarm() counts whole seconds and may fire a hair early: allow for it.
        if ($this->deadline !== null && $now >= $this->deadline - 0.05) {
            if (!$this->timedOut) {
                $this->timedOut = true;
                $this->deadline = $now + self::TIMEOUT_GRACE;
                $this->arm();
                throw new HandlerTimeout($this->timeoutMessage($task));
            }
            $this->current = null;
            pcntl_alarm(0);
            $this->say(sprintf('%s #%d ignored its timeout and still runs; exiting', $task->type, $task->id));
            $this->fail($tm, $task, new HandlerTimeout($this->timeoutMessage($task)), $this->began);
            exit(1);
        }
        if ($now >= $this->nextBeat - 0.05) {
            $this->beat($tm);
        }
        $this->arm();
    }

    /** Schedules the next SIGALRM: the next heartbeat or the deadline, whichever is first. */
    private function arm(): void
    {
        if (!$this->signals || $this->current === null) {
            return;
        }
        $due = $this->deadline === null ? $this->nextBeat : min($this->nextBeat, $this->deadline);
        pcntl_alarm(max(1, (int) ceil($due - microtime(true))));
    }

    private function disarm(): void
    {
        $this->current = null;
        if ($this->signals) {
            pcntl_alarm(0);
        }
    }

    /** Why the loop should stop before claiming another task, or null to go on. */
    private function stopReason(int $jobs, float $started): ?string
    {
        $o = $this->options;
        return match (true) {
            $this->stop => $this->stopReason,
            $o['once'] && $jobs >= 1 => '--once',
            $o['max_jobs'] > 0 && $jobs >= $o['max_jobs'] => "--max-jobs={$o['max_jobs']} reached",
            $o['max_time'] > 0 && microtime(true) - $started >= $o['max_time'] => "--max-time={$o['max_time']} reached",
            memory_get_usage(true) >= $o['memory'] * 1048576 => sprintf(
                'memory %d MB is over --memory=%d',
                intdiv(memory_get_usage(true), 1048576),
                $o['memory']
            ),
            default => null,
        };
    }

    /**
     * How long the next claim may wait for a task: 'sleep', at most MAX_WAIT, and no later than
     * --max-time. 0 (--sleep=0): the claim does not wait.
     */
    private function claimWait(float $started): float
    {
        $wait = min($this->options['sleep'], self::MAX_WAIT);
        if ($this->options['max_time'] > 0) {
            $wait = min($wait, $started + $this->options['max_time'] - microtime(true));
        }
        return max(0.0, round($wait, 3));
    }

    /** Sleeps up to $seconds, in slices so that a stop request ends it promptly. */
    private function pause(float $seconds): void
    {
        $until = microtime(true) + $seconds;
        while (!$this->stop && ($left = $until - microtime(true)) > 0) {
            usleep((int) (min($left, 0.1) * 1e6));
        }
    }

    private function timeoutMessage(Task $task): string
    {
        return sprintf('%s #%d ran longer than the timeout of %ds', $task->type, $task->id, $this->options['timeout']);
    }

    private function say(string $line): void
    {
        ($this->log)($line);
    }

    private static function beatEvery(int $lease): int
    {
        return max(1, intdiv($lease, 3));
    }

    private static function elapsed(int $began): string
    {
        $ms = (int) round((hrtime(true) - $began) / 1e6);
        return $ms < 10000 ? "{$ms}ms" : sprintf('%.1fs', $ms / 1000);
    }

    private static function toClosure(string $type, mixed $handler): \Closure
    {
        if (is_object($handler) && !$handler instanceof \Closure && method_exists($handler, 'handle')) {
            return $handler->handle(...);
        }
        if (is_callable($handler)) {
            return \Closure::fromCallable($handler);
        }
        if (is_string($handler) && class_exists($handler)) {
            if (!method_exists($handler, 'handle')) {
                throw new \InvalidArgumentException("handler for '$type': class $handler has no handle(Task) method");
            }
            return (new $handler())->handle(...);
        }
        throw new \InvalidArgumentException(sprintf(
            "handler for '%s' must be a callable, an object with handle(Task) or the name of such a class; got %s",
            $type,
            is_string($handler) ? "'$handler' (no such function or class)" : get_debug_type($handler)
        ));
    }

    private static function checkOption(string $key, mixed $value): mixed
    {
        $bad = static fn (string $want) => new \InvalidArgumentException(
            sprintf('worker option %s must be %s, got %s', $key, $want, var_export($value, true))
        );
        switch ($key) {
            case 'worker_id':
                if ($value !== null && (!is_string($value) || $value === '')) {
                    throw $bad('a non-empty string');
                }
                return $value;
            case 'types':
                if ($value !== null && (!is_array($value) || $value === [] || array_filter($value, static fn ($t) => !is_string($t) || $t === '') !== [])) {
                    throw $bad('a non-empty list of type names');
                }
                return $value === null ? null : array_values(array_unique($value));
            case 'sleep':
                if (!is_int($value) && !is_float($value) || $value < 0) {
                    throw $bad('a number of seconds >= 0');
                }
                return (float) $value;
            case 'once':
            case 'stop_when_empty':
                if (!is_bool($value)) {
                    throw $bad('true or false');
                }
                return $value;
            case 'lease':
            case 'memory':
                if (!is_int($value) || $value < 1) {
                    throw $bad('a whole number >= 1');
                }
                return $value;
            default: // max_jobs, max_time, timeout
                if (!is_int($value) || $value < 0) {
                    throw $bad('a whole number >= 0 (0: no limit)');
                }
                return $value;
        }
    }
}
