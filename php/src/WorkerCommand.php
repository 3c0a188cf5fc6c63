<?php

declare(strict_types=1);

namespace TaskManager;

use TaskManager\Exception\TaskManagerException;

/**
 * The bin/taskmanager-worker command: parses the options (Laravel's queue:work spelling),
 * loads the bootstrap file and runs a Worker.
 *
 * Exit codes: 0 when the worker stops as asked (signal, --once, --max-jobs, --max-time,
 * --memory, an empty queue with --stop-when-empty); 1 when the database or the bootstrap
 * fails, or a handler ignores its --timeout; 2 for bad options or a bootstrap that gives no
 * handlers.
 */
final class WorkerCommand
{
    public const USAGE = <<<'TXT'
        Usage: taskmanager-worker --bootstrap=FILE [options]

          --bootstrap=FILE    PHP file that loads the application and either returns
                              ['task.type' => handler, ...] or configures $worker
                              ($worker->register('task.type', handler)); a handler is a
                              callable taking a TaskManager\Task, an object with
                              handle(Task), or the name of such a class
          --types=a,b         work only on these types (default: every type with a handler)
          --sleep=3           seconds one claim waits on an empty queue for a task to
                              arrive (at most 5; 0: no waiting, poll every 10 ms)
          --max-jobs=N        exit after N tasks (0: no limit)
          --max-time=S        exit after S seconds, once the task in hand is done (0: no limit)
          --memory=128        exit once PHP uses this many MB, after the task in hand
          --timeout=S         fail a task whose handler runs longer than S seconds (0: no limit)
          --lease=60          lease in seconds; heartbeats renew it every lease/3 seconds
          --once              work on one task (or find none), then exit
          --stop-when-empty   exit when nothing is runnable
          --worker-id=ID      name recorded as the tasks' claimer (default: hostname:pid)
          -h, --help          this text

        The database is configured as for TaskManager::getInstance(): configure() or the
        config.php constants (DB_HOST, DB_NAME, ...) in the bootstrap, else the TASKMANAGER_*
        environment variables (e.g. TASKMANAGER_DATABASE_URL).
        SIGTERM and SIGINT finish the task in hand, then exit 0. An idle worker is
        waiting inside a claim and PHP handles the signal when that returns: within
        --sleep seconds, and never more than 5.

        TXT;

    /** Options that take a value, and the Worker setting each one maps to. */
    private const VALUED = [
        'bootstrap' => null,
        'types' => 'types',
        'sleep' => 'sleep',
        'max-jobs' => 'max_jobs',
        'max-time' => 'max_time',
        'memory' => 'memory',
        'timeout' => 'timeout',
        'lease' => 'lease',
        'worker-id' => 'worker_id',
    ];

    /** Flags, and the Worker setting each one maps to. */
    private const FLAGS = ['once' => 'once', 'stop-when-empty' => 'stop_when_empty', 'help' => null];

    /** @param list<string> $argv as PHP gives it (the script name first) */
    public static function main(array $argv): int
    {
        try {
            $parsed = self::parse(array_slice($argv, 1));
        } catch (\InvalidArgumentException $e) {
            return self::usageError($e->getMessage());
        }
        if ($parsed === null) {
            fwrite(STDOUT, self::USAGE);
            return 0;
        }
        [$file, $options] = $parsed;
        try {
            $worker = new Worker(null, $options);
        } catch (\InvalidArgumentException $e) {
            return self::usageError($e->getMessage());
        }

        if (!is_file($file) || !is_readable($file)) {
            return self::usageError("--bootstrap: cannot read the file '$file'");
        }
        try {
            // The file sees $worker and nothing else of this scope.
            $returned = (static function (Worker $worker, string $__file): mixed {
                return require $__file;
            })($worker, $file);
        } catch (\Throwable $e) {
            return self::error(sprintf('the bootstrap %s failed: %s: %s', $file, get_class($e), $e->getMessage()));
        }
        try {
            if (is_array($returned)) {
                $worker->registerAll($returned);
            } elseif ($returned !== 1 && $returned !== null && $returned !== $worker) {
                // `require` gives 1 for a file without return: then it configured $worker.
                throw new \InvalidArgumentException(sprintf(
                    'the bootstrap %s returned %s: return an array of type name => handler, or return nothing and call $worker->register()',
                    $file,
                    get_debug_type($returned)
                ));
            }
            if ($worker->types() === []) {
                throw new \InvalidArgumentException("the bootstrap $file registered no handlers: return ['task.type' => handler, ...] from it, or call \$worker->register('task.type', handler) in it");
            }
            // Options given on the command line win over what the bootstrap configured.
            $worker->configure($options);
        } catch (\InvalidArgumentException $e) {
            return self::usageError($e->getMessage());
        }

        try {
            return $worker->run();
        } catch (TaskManagerException $e) {
            return self::error(sprintf('%s: %s', get_class($e), $e->getMessage()));
        } catch (\InvalidArgumentException | \LogicException $e) {
            return self::usageError($e->getMessage());
        }
    }

    /**
     * The bootstrap file and the Worker settings, or null for --help.
     *
     * @param list<string> $args
     * @return array{0: string, 1: array<string, mixed>}|null
     */
    public static function parse(array $args): ?array
    {
        $file = null;
        $options = [];
        for ($i = 0; $i < count($args); $i++) {
            $arg = $args[$i];
            if ($arg === '-h') {
                return null;
            }
            if (!str_starts_with($arg, '--')) {
                throw new \InvalidArgumentException("unexpected argument '$arg' (options start with --)");
            }
            [$name, $value] = str_contains($arg, '=') ? explode('=', substr($arg, 2), 2) : [substr($arg, 2), null];
            if (array_key_exists($name, self::FLAGS)) {
                if ($value !== null) {
                    throw new \InvalidArgumentException("--$name takes no value");
                }
                if ($name === 'help') {
                    return null;
                }
                $options[self::FLAGS[$name]] = true;
                continue;
            }
            if (!array_key_exists($name, self::VALUED)) {
                throw new \InvalidArgumentException("unknown option --$name");
            }
            if ($value === null) {
                if (!isset($args[$i + 1]) || str_starts_with($args[$i + 1], '--')) {
                    throw new \InvalidArgumentException("--$name needs a value");
                }
                $value = $args[++$i];
            }
            if ($name === 'bootstrap') {
                $file = $value;
                continue;
            }
            $options[self::VALUED[$name]] = self::value($name, $value);
        }
        if ($file === null || $file === '') {
            throw new \InvalidArgumentException('--bootstrap=FILE is required: the PHP file that registers the handlers');
        }
        return [$file, $options];
    }

    private static function value(string $name, string $value): mixed
    {
        switch ($name) {
            case 'types':
                $types = array_values(array_filter(array_map('trim', explode(',', $value)), 'strlen'));
                if ($types === []) {
                    throw new \InvalidArgumentException("--types needs at least one type name, got '$value'");
                }
                return $types;
            case 'worker-id':
                if (trim($value) === '') {
                    throw new \InvalidArgumentException('--worker-id must not be empty');
                }
                return $value;
            case 'sleep':
                if (!preg_match('/^\d+(\.\d+)?$/', $value)) {
                    throw new \InvalidArgumentException("--sleep must be a number of seconds, got '$value'");
                }
                return (float) $value;
            default:
                if (!preg_match('/^\d{1,9}$/', $value)) {
                    throw new \InvalidArgumentException("--$name must be a whole number, got '$value'");
                }
                return (int) $value;
        }
    }

    private static function usageError(string $message): int
    {
        fwrite(STDERR, "taskmanager-worker: $message\nRun taskmanager-worker --help for the options.\n");
        return 2;
    }

    private static function error(string $message): int
    {
        fwrite(STDERR, "taskmanager-worker: $message\n");
        return 1;
    }
}
