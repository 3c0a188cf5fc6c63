<?php

declare(strict_types=1);

namespace TaskManager;

use FFI;
use FFI\CData;
use TaskManager\Exception\TaskManagerException;

/**
 * The task queue, used the way the original Database.php singleton was:
 *
 *     require 'config/config.php';            // defines DB_HOST, DB_NAME, ... as before
 *     $tm = TaskManager::getInstance();
 *     $tm->enqueue('email.send', ['to' => 'ada@example.com']);
 *
 * Configuration, first match wins: the array given to configure(); the original constants
 * (DB_HOST, DB_NAME, DB_USER, DB_PASS, DB_CHARSET, TASK_CLAIM_TIMEOUT, MAX_TASK_ATTEMPTS,
 * ENABLE_TASK_HISTORY, ENABLE_SCHEMA_VALIDATION, plus optional DB_PORT and DB_SOCKET), or
 * DB_PATH alone for the embedded engine (the queue in one SQLite file; beside DB_HOST, DB_NAME,
 * ... it is a TM_CONFIG error naming both); otherwise the TASKMANAGER_* environment variables.
 *
 * Every method takes and returns plain PHP arrays and throws a subclass of
 * TaskManagerException on failure. Safe to use after pcntl_fork(): the child gets its own
 * database connections.
 */
final class TaskManager
{
    /**
     * This package's version: one number with the crate and the Python package
     * (tests/version.rs). version() reports the library actually loaded, which may differ.
     */
    public const VERSION = '0.1.0';

    private static ?self $instance = null;

    /** @var array<string, mixed>|null */
    private static ?array $config = null;

    private readonly FFI $ffi;
    private CData $client;

    /** Maps the original constants to the library's configuration keys. */
    private const CONSTANTS = [
        'DB_HOST' => 'db_host',
        'DB_PORT' => 'db_port',
        'DB_SOCKET' => 'db_socket',
        'DB_NAME' => 'db_name',
        'DB_USER' => 'db_user',
        'DB_PASS' => 'db_pass',
        // The embedded engine: the queue in this SQLite file instead of on a server.
        'DB_PATH' => 'db_path',
        'DB_CHARSET' => 'db_charset',
        'TASK_CLAIM_TIMEOUT' => 'task_claim_timeout',
        'MAX_TASK_ATTEMPTS' => 'max_task_attempts',
        'ENABLE_TASK_HISTORY' => 'enable_task_history',
        'ENABLE_SCHEMA_VALIDATION' => 'enable_schema_validation',
    ];

    /** @param array<string, mixed>|null $config */
    private function __construct(?array $config)
    {
        $this->ffi = Native::ffi();
        $client = $this->ffi->new('tm_client *');
        Native::check($this->ffi->tm_client_open($config === null ? null : Native::json($config), FFI::addr($client)));
        $this->client = $client;
    }

    public function __destruct()
    {
        if (isset($this->client) && !FFI::isNull($this->client)) {
            $this->ffi->tm_client_free($this->client);
        }
    }

    private function __clone()
    {
    }

    public function __wakeup(): void
    {
        throw new \LogicException('TaskManager cannot be unserialized; use TaskManager::getInstance()');
    }

    /** The shared instance, created on first use from the configuration described above. */
    public static function getInstance(): self
    {
        return self::$instance ??= new self(self::$config ?? self::configFromConstants());
    }

    /**
     * Sets the configuration (keys as in the README: db_host, db_name, ...) and drops the
     * current instance, so the next getInstance() uses it.
     *
     * @param array<string, mixed> $config
     */
    public static function configure(array $config): void
    {
        self::$config = $config;
        self::$instance = null;
    }

    /** Forgets the instance and any configure()d settings (for tests and long-lived scripts). */
    public static function resetInstance(): void
    {
        self::$instance = null;
        self::$config = null;
    }

    /**
     * The configuration the original constants describe, or null when neither DB_NAME nor
     * DB_PATH is defined (the library then reads the TASKMANAGER_* environment variables).
     *
     * @return array<string, mixed>|null
     */
    public static function configFromConstants(): ?array
    {
        if (!defined('DB_NAME') && !defined('DB_PATH')) {
            return null;
        }
        $config = [];
        foreach (self::CONSTANTS as $constant => $key) {
            if (defined($constant)) {
                $config[$key] = constant($constant);
            }
        }
        // The original accepted "host:port" in DB_HOST.
        if (isset($config['db_host']) && preg_match('/^(.+):(\d+)$/', (string) $config['db_host'], $m)) {
            $config['db_host'] = $m[1];
            $config['db_port'] ??= (int) $m[2];
        }
        return $config;
    }

    /** The library version, e.g. "0.1.0". */
    public static function version(): string
    {
        // FFI hands `const char *` results over as PHP strings already.
        return Native::ffi()->tm_version();
    }

    /**
     * Creates or upgrades the database schema. Idempotent; the only call that runs DDL. With
     * $to, stops at that schema version (during a rolling deploy: 6 while the previous release
     * still runs, then a plain migrate()).
     */
    public function migrate(?int $to = null): void
    {
        Native::check($to === null
            ? $this->ffi->tm_migrate($this->client)
            : $this->ffi->tm_migrate_to($this->client, $to));
    }

    /**
     * Registers a task type. Same name, version and schema again changes nothing; another
     * version (a label such as '1.0.0', 1 to 50 characters) replaces the schema for new tasks;
     * the same version with another schema throws ConflictException.
     *
     * @param array<mixed>|object|string $paramSchema JSON Schema as an array, object or JSON text
     * @return array<string, mixed> the type: id, name, version, is_active, changed, ...
     */
    public function registerType(string $name, array|object|string $paramSchema, string|int $version = '1'): array
    {
        $schema = is_string($paramSchema) ? $paramSchema : Native::json($paramSchema);
        $definition = sprintf(
            '{"name":%s,"version":%s,"param_schema":%s}',
            Native::json($name),
            Native::json((string) $version),
            $schema
        );
        return $this->call('tm_type_register', $definition);
    }

    /**
     * @return array<string, mixed> the type: id, name, version, is_active, paused, paused_until,
     *                              max_running, rate, ...
     */
    public function getType(string $name): array
    {
        return $this->call('tm_type_get', $name);
    }

    /** @return list<array<string, mixed>> */
    public function listTypes(): array
    {
        return $this->call('tm_type_list');
    }

    /** Deactivated types refuse new tasks; their queued tasks still run. @return array<string, mixed> */
    public function setTypeActive(string $name, bool $active): array
    {
        return $this->call('tm_type_set_active', $name, $active);
    }

    /**
     * Pauses a task type: claims that begin after this returns hand out none of its tasks,
     * until resumeType() or, with $until (RFC 3339 UTC, e.g. '2026-12-24T18:00:00Z'; in the
     * future and at most a year ahead), until then. Enqueues are still accepted; tasks already
     * claimed finish normally; paused tasks stay pending and spend no attempt. A bad $until
     * throws InvalidArgumentException naming `until`; an unknown type NotFoundException.
     *
     * @return array<string, mixed> the type, with paused: true and paused_until (null without $until)
     */
    public function pauseType(string $name, ?string $until = null): array
    {
        return $this->call('tm_type_pause', $name, $until === null ? null : Native::json(['until' => $until]));
    }

    /** Ends a pause at once. @return array<string, mixed> the type, with paused: false */
    public function resumeType(string $name): array
    {
        return $this->call('tm_type_resume', $name);
    }

    /**
     * Sets a type's flow limits. Keys, each optional (a key left out keeps its value, null
     * removes that limit):
     * - max_running (1..100000): at most this many of its tasks hold a lease at any moment,
     *   across every process and host; a claim skips a saturated type and takes other work;
     * - rate: ['limit' => 1..100000, 'per_seconds' => 1..31536000, 'burst' => 0..(100000 - limit)
     *   (default 0)]: claims start at most limit + burst of its tasks in any window of
     *   per_seconds (sliding, counted at claim).
     * A bad value throws InvalidArgumentException naming the field (max_running, rate.limit,
     * rate.per_seconds, rate.burst).
     *
     * @param array{max_running?: ?int, rate?: ?array{limit: int, per_seconds: int, burst?: int}} $limits
     * @return array<string, mixed> the type, with max_running and rate
     */
    public function setTypeLimits(string $name, array $limits): array
    {
        return $this->call('tm_type_set_limits', $name, Native::json($limits === [] ? new \stdClass() : $limits));
    }

    /**
     * Enqueues a task. Options: priority, delay_seconds | run_at, max_attempts, dedupe_key,
     * dedupe_scope ('always' | 'active'), unique_for_seconds (1 to 31536000: the dedupe key
     * blocks a new task only while the task holding it is younger than this).
     *
     * @param array<mixed>|object $params
     * @param array<string, mixed> $options
     * @return array{id: int, type: string, status: string, deduplicated: bool, dedupe_key: string}
     */
    public function enqueue(string $type, array|object $params, array $options = []): array
    {
        return $this->call('tm_task_enqueue', $type, Native::json($params), self::options($options));
    }

    /**
     * Enqueues a task inside your own transaction on your own connection: the library
     * validates and keys it, and the INSERT (with its `created` history row when history is
     * on) runs on $conn, so the task exists if and only if your transaction commits. Every
     * value reaches the SQL as a hexadecimal literal written by the library. A task already
     * holding the key makes the INSERT a no-op and is the answer (`deduplicated` true); a key
     * held by another open transaction waits for it, as any unique insert does. Options as for
     * enqueue() but unique_for_seconds. Errors of $conn are its driver's (PDOException,
     * mysqli_sql_exception); a driver in silent mode gets a DatabaseException.
     *
     * @param array<mixed>|object $params
     * @param array<string, mixed> $options
     * @return array{id: int, type: string, status: string, deduplicated: bool, dedupe_key: string}
     */
    public function enqueueWith(\PDO|\mysqli $conn, string $type, array|object $params, array $options = []): array
    {
        $statement = $this->call('tm_task_enqueue_statement', $type, Native::json($params), self::options($options));
        foreach ($statement['statements'] as $sql) {
            self::query($conn, $sql);
        }
        $result = self::query($conn, $statement['select_sql']);
        $row = $result instanceof \PDOStatement ? $result->fetch(\PDO::FETCH_ASSOC) : $result->fetch_assoc();
        if (!is_array($row)) {
            throw new Exception\DatabaseException('enqueueWith: the task holding the key was not found after its INSERT', Code::DATABASE);
        }
        return [
            'id' => (int) $row['id'],
            'type' => $statement['type'],
            'status' => (string) $row['status'],
            'deduplicated' => (int) $row['created'] !== 1,
            'dedupe_key' => $statement['dedupe_key'],
        ];
    }

    /** Runs one statement on the caller's connection; a false (silent error mode) throws. */
    private static function query(\PDO|\mysqli $conn, string $sql): \PDOStatement|\mysqli_result|bool
    {
        $result = $conn->query($sql);
        if ($result === false) {
            $error = $conn instanceof \PDO ? implode(' ', array_map('strval', $conn->errorInfo())) : $conn->error;
            throw new Exception\DatabaseException("enqueueWith: the statement failed on your connection: $error", Code::DATABASE);
        }
        return $result;
    }

    /**
     * Enqueues many tasks in one transaction, all or nothing.
     *
     * @param list<array{type: string, params: array<mixed>|object, options?: array<string, mixed>}> $items
     * @return list<array<string, mixed>>
     */
    public function enqueueBatch(array $items): array
    {
        $normalized = array_map(static fn (array $item): array => [
            'type' => $item['type'] ?? null,
            'params' => ($item['params'] ?? []) === [] ? new \stdClass() : $item['params'],
            'options' => ($item['options'] ?? []) === [] ? new \stdClass() : $item['options'],
        ], $items);
        return $this->call('tm_task_enqueue_batch', Native::json(array_values($normalized)));
    }

    /**
     * Claims up to `limit` runnable tasks. Options: types (list) | type_prefix |
     * type_pattern (SQL LIKE: %, _, \ escapes), type_ids (list), limit, lease_seconds,
     * sort_by, sort_order, wait_seconds (0 to 60: when nothing is claimable, wait, holding no
     * transaction or lock, until a task is or the time is up). An empty array when nothing is
     * runnable. Paused types and types at their max_running or rate limit are skipped; use
     * claimReport() to learn when a limited type may start its next task.
     *
     * @param array<string, mixed> $options
     * @return list<array{id: int, type: string, params: mixed, priority: int, attempts: int, max_attempts: int, lease_token: string, lease_expires_at: string}>
     */
    public function claim(string $workerId, array $options = []): array
    {
        if (array_key_exists('report', $options)) {
            throw new Exception\InvalidArgumentException('claim: the report option changes the answer; call claimReport() instead', Code::INVALID_ARGUMENT);
        }
        return $this->call('tm_task_claim', $workerId, self::options($options));
    }

    /**
     * claim() that also says when to try again: `tasks` as claim() answers them, and
     * `next_allowed_at` (RFC 3339 UTC, or null): when a rate-limited or paused-until type that
     * has runnable tasks may start its next one. Options as for claim().
     *
     * @param array<string, mixed> $options
     * @return array{tasks: list<array{id: int, type: string, params: mixed, priority: int, attempts: int, max_attempts: int, lease_token: string, lease_expires_at: string}>, next_allowed_at: ?string}
     */
    public function claimReport(string $workerId, array $options = []): array
    {
        return $this->call('tm_task_claim', $workerId, Native::json(['report' => true] + $options));
    }

    /**
     * Extends the lease (options: lease_seconds, progress 0..100).
     *
     * @param array<string, mixed> $options
     * @return array{id: int, lease_expires_at: string, progress: int}
     */
    public function heartbeat(int $taskId, string $leaseToken, array $options = []): array
    {
        return $this->call('tm_task_heartbeat', $taskId, $leaseToken, self::options($options));
    }

    /**
     * heartbeat() for a caller that has no lease token: the task must be claimed by $workerId.
     *
     * @param array<string, mixed> $options
     * @return array{id: int, lease_expires_at: string, progress: int}
     */
    public function heartbeatAsWorker(int $taskId, string $workerId, array $options = []): array
    {
        return $this->call('tm_task_heartbeat_as_worker', $taskId, $workerId, self::options($options));
    }

    /**
     * complete() for a caller that has no lease token (the original system's workers): the task
     * must be claimed by $workerId, as the original checked it. A worker id is no fence; use
     * the lease token where you have it.
     *
     * @return array{id: int, status: string, repeated: bool}
     */
    public function completeAsWorker(int $taskId, string $workerId, mixed $result = null): array
    {
        return $this->call('tm_task_complete_as_worker', $taskId, $workerId, Native::json($result === [] ? new \stdClass() : $result));
    }

    /**
     * fail() for a caller that has no lease token: the task must be claimed by $workerId.
     *
     * @param array<string, mixed> $options
     * @return array{id: int, status: string, attempts: int, max_attempts: int, run_at: string, repeated: bool}
     */
    public function failAsWorker(int $taskId, string $workerId, string $error, array $options = []): array
    {
        return $this->call('tm_task_fail_as_worker', $taskId, $workerId, $error, self::options($options));
    }

    /**
     * Completes a claimed task. Repeating it with the same token is safe.
     *
     * @return array{id: int, status: string, repeated: bool}
     */
    public function complete(int $taskId, string $leaseToken, mixed $result = null): array
    {
        return $this->call('tm_task_complete', $taskId, $leaseToken, Native::json($result === [] ? new \stdClass() : $result));
    }

    /**
     * A worker's loop step in one round trip and one commit: completes the task it holds and,
     * unless that failed, claims the next ones (options as for claim(), wait_seconds included:
     * the complete commits first, then the claim waits). A stale token throws
     * LeaseLostException and claims nothing; a repeat answers repeated: true and claims too.
     *
     * @param array<string, mixed> $options
     * @return array{completed: array{id: int, status: string, repeated: bool}, claimed: list<array<string, mixed>>}
     */
    public function completeAndClaim(int $taskId, string $leaseToken, mixed $result, string $workerId, array $options = []): array
    {
        return $this->call(
            'tm_task_complete_and_claim',
            $taskId,
            $leaseToken,
            Native::json($result === [] ? new \stdClass() : $result),
            $workerId,
            self::options($options)
        );
    }

    /**
     * Completes many claimed tasks in one transaction, with an outcome per task.
     *
     * @param list<array{id: int, lease_token: string, result?: mixed}> $items
     * @return list<array{id: int, ok: bool, code?: string, message?: string}>
     */
    public function completeBatch(array $items): array
    {
        return $this->call('tm_task_complete_batch', Native::json(array_values($items)));
    }

    /**
     * Fails a claimed task (options: retry = true, retry_in_seconds). Retries back off
     * exponentially until max_attempts; then the task is 'failed'.
     *
     * @param array<string, mixed> $options
     * @return array{id: int, status: string, attempts: int, max_attempts: int, run_at: string, repeated: bool}
     */
    public function fail(int $taskId, string $leaseToken, string $error, array $options = []): array
    {
        return $this->call('tm_task_fail', $taskId, $leaseToken, $error, self::options($options));
    }

    /** Gives a claimed task back at once, without counting the attempt. @return array<string, mixed> */
    public function release(int $taskId, string $leaseToken): array
    {
        return $this->call('tm_task_release', $taskId, $leaseToken);
    }

    /** @return array<string, mixed> */
    public function cancel(int $taskId, ?string $reason = null): array
    {
        return $this->call('tm_task_cancel', $taskId, $reason);
    }

    /** Puts a failed or cancelled task back to pending. @return array<string, mixed> */
    public function retry(int $taskId): array
    {
        return $this->call('tm_task_retry', $taskId);
    }

    /**
     * Cancels every task $filter selects (type, status, ids, before_id, older_than_seconds,
     * newer_than_seconds, worker_id, text; at least one of ids, type, status, worker_id,
     * text), each as cancel() would. Options: dry_run, reason, limit (1..10000, default 1000).
     * Tasks the action does not apply to are listed in `skipped`, not thrown.
     *
     * @param array<string, mixed> $filter
     * @param array<string, mixed> $options
     * @return array{action: string, dry_run: bool, matched: int, changed: list<int>, unchanged: list<int>, skipped: list<array{id: int, code: string, message: string}>, next_before_id: ?int}
     */
    public function cancelWhere(array $filter, array $options = []): array
    {
        return $this->call('tm_tasks_cancel_where', Native::json($filter), self::options($options));
    }

    /**
     * Puts every failed or cancelled task $filter selects back to pending, each as retry()
     * would. Filter, options (no reason) and answer as for cancelWhere().
     *
     * @param array<string, mixed> $filter
     * @param array<string, mixed> $options
     * @return array{action: string, dry_run: bool, matched: int, changed: list<int>, unchanged: list<int>, skipped: list<array{id: int, code: string, message: string}>, next_before_id: ?int}
     */
    public function retryWhere(array $filter, array $options = []): array
    {
        return $this->call('tm_tasks_retry_where', Native::json($filter), self::options($options));
    }

    /**
     * Deletes tasks that finished at least $olderThanSeconds ago, with their history, in short
     * transactions (options: statuses, batch_size, dry_run, max_batches).
     *
     * @param array<string, mixed> $options
     * @return array{tasks: int, history: int, batches: int, done: bool, dry_run: bool}
     */
    public function prune(int $olderThanSeconds, array $options = []): array
    {
        return $this->call('tm_tasks_prune', Native::json(['older_than_seconds' => $olderThanSeconds] + $options));
    }

    /** The stats() figures as Prometheus text exposition. */
    public function metrics(): string
    {
        $out = Native::outString();
        Native::check($this->ffi->tm_stats_prometheus($this->client, FFI::addr($out)));
        return Native::takeText($out);
    }

    /** Recovers every expired lease now. @return array{recovered: int, requeued: int, failed: int} */
    public function recoverExpired(): array
    {
        return $this->call('tm_tasks_recover_expired');
    }

    /**
     * Creates or replaces (by name) a recurring schedule: a task of `type` with `params` at
     * every occurrence of `cron` ("0 3 * * *"; six fields with seconds first) in `timezone`
     * (IANA, default UTC). Keys: name, type, cron (required), timezone, params, enabled,
     * misfire ('skip' | 'once' | 'backfill'), misfire_grace_seconds. A bad field throws
     * InvalidArgumentException naming it; an unknown type NotFoundException.
     *
     * @param array<string, mixed> $schedule
     * @return array<string, mixed> the schedule: id, name, type, cron, timezone, params, enabled, misfire, next_run_at, last_run_at, changed, ...
     */
    public function schedulePut(array $schedule): array
    {
        if (array_key_exists('params', $schedule) && $schedule['params'] === []) {
            $schedule['params'] = new \stdClass();
        }
        return $this->call('tm_schedule_put', Native::json($schedule));
    }

    /** @return array<string, mixed> */
    public function scheduleGet(string $name): array
    {
        return $this->call('tm_schedule_get', $name);
    }

    /** Every schedule, by name, with its next run. @return list<array<string, mixed>> */
    public function scheduleList(): array
    {
        return $this->call('tm_schedule_list');
    }

    /** Deletes a schedule (its tasks stay). @return array<string, mixed> the schedule as it was */
    public function scheduleDelete(string $name): array
    {
        return $this->call('tm_schedule_delete', $name);
    }

    /**
     * Enqueues every due occurrence now, each exactly once however many processes tick
     * (claims tick too; call this from cron where no worker runs).
     *
     * @return array{enqueued: list<array<string, mixed>>, missed: list<array<string, mixed>>, errors: list<array<string, mixed>>}
     */
    public function schedulesTick(): array
    {
        return $this->call('tm_schedules_tick');
    }

    /** @return array<string, mixed> every column of the task */
    public function getTask(int $taskId): array
    {
        return $this->call('tm_task_get', $taskId);
    }

    /**
     * A page of tasks, newest first. Filter: type, status, limit, before_id.
     *
     * @param array<string, mixed> $filter
     * @return list<array<string, mixed>>
     */
    public function listTasks(array $filter = []): array
    {
        return $this->call('tm_task_list', self::options($filter));
    }

    /** @return list<array<string, mixed>> */
    public function history(int $taskId): array
    {
        return $this->call('tm_task_history', $taskId);
    }

    /**
     * Counts by type and status, and more (see tm_stats). `flow` is present when a type is
     * paused or limited: type name => paused, paused_until, max_running, running, rate,
     * started_in_window.
     *
     * @return array{types: array<string, array<string, int>>, totals: array<string, int>, flow?: array<string, array<string, mixed>>}
     */
    public function stats(): array
    {
        return $this->call('tm_stats');
    }

    /** @param array<string, mixed> $options */
    private static function options(array $options): ?string
    {
        return $options === [] ? null : Native::json($options);
    }

    /**
     * Calls `tm_<name>(client, ...$args, &out)`, throws on error, returns the decoded output.
     */
    private function call(string $function, mixed ...$args): mixed
    {
        foreach ($args as $arg) {
            if (is_string($arg) && str_contains($arg, "\0")) {
                // C strings end at the first NUL: refuse rather than silently truncate.
                throw new Exception\InvalidArgumentException("$function: a string argument contains a NUL byte", Code::INVALID_ARGUMENT);
            }
        }
        $out = Native::outString();
        try {
            Native::check($this->ffi->$function($this->client, ...[...$args, FFI::addr($out)]));
        } catch (\FFI\Exception $e) {
            throw new TaskManagerException("$function: {$e->getMessage()}", Code::INVALID_ARGUMENT, null, $e);
        }
        return Native::takeJson($out);
    }
}
