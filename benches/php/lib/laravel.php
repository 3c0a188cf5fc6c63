<?php

declare(strict_types=1);

namespace TaskManager\Bench;

use PDO;
use PDOStatement;
use RuntimeException;

/**
 * Laravel 8's database queue (Illuminate\Queue\DatabaseQueue on a MySQL connection), written
 * again with PDO from its documented behaviour, so that it runs without the framework:
 *
 *  - push: one INSERT of (queue, attempts 0, reserved_at NULL, available_at, created_at,
 *    payload), the payload being the JSON Laravel writes for a queued job object;
 *  - pop: in a transaction, SELECT * of the oldest available (or reserved but expired) job
 *    FOR UPDATE SKIP LOCKED, then UPDATE its reserved_at and attempts;
 *  - delete after the job ran: in a transaction, SELECT * ... FOR UPDATE by id, then DELETE;
 *  - bulk: one multi-row INSERT.
 *
 * Laravel's database Connection prepares every statement when it runs it and keeps no
 * statement cache (Connection::select/statement/affectingStatement call PDO::prepare each
 * time, with emulation off), so each statement here is prepared, executed and dropped too:
 * that is the cost of Laravel's queue, not a handicap added to it. Times are Unix seconds from
 * the client's clock, as Laravel's InteractsWithTime gives them. The worker decodes the
 * payload and unserializes the command before running it, as Laravel's worker does.
 */
final class Laravel
{
    public const QUEUE = 'default';
    /** config/queue.php's retry_after for the database connection. */
    private const RETRY_AFTER = 90;

    public function __construct(private readonly PDO $pdo)
    {
    }

    /**
     * A connection as Laravel's MySqlConnector opens it: its PDO options, then `set names`
     * with the collation and the strict sql_mode (both untimed, once per connection). The
     * isolation level is the server's (Laravel sets none unless configured).
     */
    public static function connect(Server $server): self
    {
        $pdo = new PDO(sprintf('mysql:host=%s;port=%d;dbname=%s', $server->host, $server->port, $server->db), $server->user, $server->pass, [
            PDO::ATTR_CASE => PDO::CASE_NATURAL,
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_ORACLE_NULLS => PDO::NULL_NATURAL,
            PDO::ATTR_STRINGIFY_FETCHES => false,
            PDO::ATTR_EMULATE_PREPARES => false,
        ]);
        $pdo->prepare("set names 'utf8mb4' collate 'utf8mb4_unicode_ci'")->execute();
        $pdo->prepare("set session sql_mode='ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'")->execute();
        return new self($pdo);
    }

    /** The table Laravel's `queue:table` migration creates. */
    public static function createTable(PDO $pdo): void
    {
        $pdo->exec(
            'CREATE TABLE jobs (
                id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                queue VARCHAR(255) NOT NULL,
                payload LONGTEXT NOT NULL,
                attempts TINYINT UNSIGNED NOT NULL,
                reserved_at INT UNSIGNED NULL,
                available_at INT UNSIGNED NOT NULL,
                created_at INT UNSIGNED NOT NULL,
                INDEX jobs_queue_index (queue)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci'
        );
    }

    /**
     * The payload Laravel 8 writes for a queued job object (Queue::createObjectPayload):
     * the job serialized into data.command, the rest of its settings beside it.
     */
    public static function payload(LaravelJob $job): string
    {
        $class = $job::class;
        return json_encode([
            'uuid' => self::uuid(),
            'displayName' => $class,
            'job' => 'Illuminate\Queue\CallQueuedHandler@call',
            'maxTries' => null,
            'maxExceptions' => null,
            'failOnTimeout' => false,
            'backoff' => null,
            'timeout' => null,
            'retryUntil' => null,
            'data' => ['commandName' => $class, 'command' => serialize(clone $job)],
        ], JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
    }

    /** A random (version 4) UUID, as Str::uuid() gives. */
    private static function uuid(): string
    {
        $bytes = random_bytes(16);
        $bytes[6] = chr(ord($bytes[6]) & 0x0f | 0x40);
        $bytes[8] = chr(ord($bytes[8]) & 0x3f | 0x80);
        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($bytes), 4));
    }

    /** DatabaseQueue::buildDatabaseRecord. @return list<mixed> */
    private static function record(string $payload, int $now): array
    {
        return [self::QUEUE, 0, null, $now, $now, $payload];
    }

    /** Queue::push of one job: one INSERT, then its id. */
    public function push(LaravelJob $job): int
    {
        $this->run(
            'insert into `jobs` (`queue`, `attempts`, `reserved_at`, `available_at`, `created_at`, `payload`) values (?, ?, ?, ?, ?, ?)',
            self::record(self::payload($job), time())
        );
        return (int) $this->pdo->lastInsertId();
    }

    /** Queue::bulk: every job in one multi-row INSERT. @param list<LaravelJob> $jobs */
    public function bulk(array $jobs): void
    {
        $now = time();
        $bindings = [];
        foreach ($jobs as $job) {
            array_push($bindings, ...self::record(self::payload($job), $now));
        }
        $this->run(
            'insert into `jobs` (`queue`, `attempts`, `reserved_at`, `available_at`, `created_at`, `payload`) values '
            . implode(', ', array_fill(0, count($jobs), '(?, ?, ?, ?, ?, ?)')),
            $bindings
        );
    }

    /** Producers: one push per job, jobs n = first..first+count-1. @return array{done: int} */
    public function pushMany(int $first, int $count): array
    {
        for ($n = $first; $n < $first + $count; $n++) {
            $this->push(new LaravelJob($n));
        }
        return ['done' => $count];
    }

    /** Queue::bulk of 500 jobs at a time. @return array{done: int} */
    public function bulkMany(int $first, int $count, int $batch = 500): array
    {
        for ($from = $first; $from < $first + $count; $from += $batch) {
            $this->bulk(array_map(
                static fn (int $n): LaravelJob => new LaravelJob($n),
                range($from, min($from + $batch, $first + $count) - 1)
            ));
        }
        return ['done' => $count];
    }

    /** DatabaseQueue::pop: the reserved job's row, or null when none is available. */
    public function pop(): ?object
    {
        $this->pdo->beginTransaction();
        try {
            $now = time();
            $job = $this->select(
                'select * from `jobs` where `queue` = ? and ((`reserved_at` is null and `available_at` <= ?) or (`reserved_at` <= ?)) '
                . 'order by `id` asc limit 1 for update skip locked',
                [self::QUEUE, $now, $now - self::RETRY_AFTER]
            );
            if ($job !== null) {
                // markJobAsReserved: DatabaseJobRecord::touch() and increment().
                $job->reserved_at = time();
                $job->attempts++;
                $this->run('update `jobs` set `reserved_at` = ?, `attempts` = ? where `id` = ?', [$job->reserved_at, $job->attempts, $job->id]);
            }
            $this->pdo->commit();
            return $job;
        } catch (\Throwable $e) {
            $this->pdo->rollBack();
            throw $e;
        }
    }

    /** DatabaseQueue::deleteReserved, what DatabaseJob::delete() calls once the job succeeded. */
    public function deleteReserved(int $id): void
    {
        $this->pdo->beginTransaction();
        try {
            if ($this->select('select * from `jobs` where `id` = ? limit 1 for update', [$id]) !== null) {
                $this->run('delete from `jobs` where `id` = ?', [$id]);
            }
            $this->pdo->commit();
        } catch (\Throwable $e) {
            $this->pdo->rollBack();
            throw $e;
        }
    }

    /**
     * A worker: pop, run (decode the payload, unserialize the command), delete, until pop
     * finds nothing.
     *
     * @return array{ids: list<int>}
     */
    public function drain(): array
    {
        $ids = [];
        while (($job = $this->pop()) !== null) {
            $payload = json_decode($job->payload, true, 512, JSON_THROW_ON_ERROR);
            $command = unserialize($payload['data']['command'], ['allowed_classes' => [LaravelJob::class]]);
            if (!$command instanceof LaravelJob) {
                throw new RuntimeException("job #{$job->id}: the command does not unserialize");
            }
            $this->deleteReserved((int) $job->id);
            $ids[] = (int) $job->id;
        }
        return ['ids' => $ids];
    }

    /** Connection::select: prepare, bind, execute, fetch; first() of the rows. */
    private function select(string $sql, array $bindings): ?object
    {
        $statement = $this->run($sql, $bindings);
        $row = $statement->fetch(PDO::FETCH_OBJ);
        return $row === false ? null : $row;
    }

    /** Connection::statement: a statement prepared for this one run, as Laravel does. */
    private function run(string $sql, array $bindings): PDOStatement
    {
        $statement = $this->pdo->prepare($sql);
        foreach (array_values($bindings) as $i => $value) {
            $statement->bindValue($i + 1, $value, is_int($value) ? PDO::PARAM_INT : PDO::PARAM_STR);
        }
        $statement->execute();
        return $statement;
    }

    public static function empty(PDO $pdo): void
    {
        $pdo->exec('TRUNCATE TABLE jobs');
    }

    /** After pushes: exactly $count jobs, none reserved. */
    public static function checkPushed(PDO $pdo, int $count): void
    {
        [$rows, $free] = $pdo->query('SELECT COUNT(*), COALESCE(SUM(reserved_at IS NULL), 0) FROM jobs')->fetch(PDO::FETCH_NUM);
        if ((int) $rows !== $count || (int) $free !== $count) {
            throw new RuntimeException("Laravel: expected $count waiting jobs, found $rows, $free not reserved");
        }
    }

    /**
     * After a drain: each job run by one worker, and the table empty.
     *
     * @param list<array{ids: list<int>}> $reports
     */
    public static function checkDrained(PDO $pdo, int $count, array $reports): void
    {
        Checks::idsOnce($reports, $count);
        $left = (int) $pdo->query('SELECT COUNT(*) FROM jobs')->fetchColumn();
        if ($left !== 0) {
            throw new RuntimeException("Laravel: $left jobs left after the drain");
        }
    }
}

/**
 * A queued job as `php artisan make:job` writes it (ShouldQueue with Dispatchable,
 * InteractsWithQueue, Queueable, SerializesModels): its one field, then the public fields the
 * traits add, which Laravel 8 serializes into every payload.
 */
final class LaravelJob
{
    /** InteractsWithQueue */
    public $job;
    /** Queueable */
    public $connection;
    public $queue;
    public $chainConnection;
    public $chainQueue;
    public $chainCatchCallbacks;
    public $delay;
    public $afterCommit;
    public $middleware = [];
    public $chained = [];

    public function __construct(public int $n)
    {
    }
}
