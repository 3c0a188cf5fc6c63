<?php

declare(strict_types=1);

namespace TaskManager\Bench;

use PDO;
use PDOStatement;
use RuntimeException;

/**
 * The floor: the fewest statements a correct queue needs, on the smallest table that serves
 * them (one secondary index, (status, id), for the claim; no history, no type, no dedupe key),
 * with PDO's server-side prepared statements, each prepared once per connection.
 *
 *  - enqueue: one single-row INSERT (autocommit);
 *  - claim: BEGIN; SELECT ... FOR UPDATE SKIP LOCKED; UPDATE to claimed; COMMIT;
 *  - complete: one UPDATE guarded by the lease token (autocommit);
 *  - batch enqueue: one multi-row INSERT.
 */
final class Floor
{
    public const TABLE = 'floor_tasks';
    private const LEASE_SECONDS = 300;

    private PDOStatement $insert;
    private PDOStatement $select;
    private PDOStatement $claim;
    private PDOStatement $complete;
    /** @var array<int, PDOStatement> multi-row INSERTs by row count */
    private array $inserts = [];

    public function __construct(private readonly PDO $pdo)
    {
        $this->insert = $pdo->prepare('INSERT INTO floor_tasks (payload) VALUES (?)');
        $this->select = $pdo->prepare(
            "SELECT id, payload FROM floor_tasks WHERE status = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
        );
        $this->claim = $pdo->prepare(
            "UPDATE floor_tasks SET status = 'claimed', attempts = attempts + 1, lease_token = ?, "
            . 'lease_expires_at = NOW(6) + INTERVAL ' . self::LEASE_SECONDS . ' SECOND WHERE id = ?'
        );
        $this->complete = $pdo->prepare(
            "UPDATE floor_tasks SET status = 'completed', result = ?, completed_at = NOW(6), lease_expires_at = NULL "
            . "WHERE id = ? AND lease_token = ? AND status = 'claimed'"
        );
    }

    /**
     * A connection as the library's own: READ COMMITTED, as the library sets on its connections
     * (no gap locks between claimers), so both run under the same isolation.
     */
    public static function connect(Server $server): self
    {
        return new self($server->pdo($server->db, ['SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED']));
    }

    public static function createTable(PDO $pdo): void
    {
        $pdo->exec(
            "CREATE TABLE floor_tasks (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                status ENUM('pending','claimed','completed','failed') NOT NULL DEFAULT 'pending',
                payload MEDIUMTEXT NOT NULL,
                result MEDIUMTEXT NULL,
                attempts INT NOT NULL DEFAULT 0,
                lease_token VARCHAR(64) NULL,
                lease_expires_at DATETIME(6) NULL,
                completed_at DATETIME(6) NULL,
                created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                KEY idx_floor_claim (status, id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        );
    }

    /** The payload of task n: the same params our tasks carry. */
    private static function payload(int $n): string
    {
        return '{"n":' . $n . '}';
    }

    /** One single-row INSERT per task. @return array{done: int} */
    public function enqueue(int $first, int $count): array
    {
        for ($n = $first; $n < $first + $count; $n++) {
            $this->insert->execute([self::payload($n)]);
        }
        return ['done' => $count];
    }

    /** One multi-row INSERT per 500 tasks. @return array{done: int} */
    public function insertBatches(int $first, int $count, int $batch = 500): array
    {
        for ($from = $first; $from < $first + $count; $from += $batch) {
            $rows = min($batch, $first + $count - $from);
            $this->inserts[$rows] ??= $this->pdo->prepare(
                'INSERT INTO floor_tasks (payload) VALUES ' . implode(',', array_fill(0, $rows, '(?)'))
            );
            $this->inserts[$rows]->execute(array_map(self::payload(...), range($from, $from + $rows - 1)));
        }
        return ['done' => $count];
    }

    /** Claims the oldest pending task: its id and lease token, or null when none is left. @return array{int, string}|null */
    public function claim(): ?array
    {
        $this->pdo->beginTransaction();
        $this->select->execute();
        $row = $this->select->fetch(PDO::FETCH_NUM);
        $this->select->closeCursor();
        if ($row === false) {
            $this->pdo->commit();
            return null;
        }
        $token = bin2hex(random_bytes(16));
        $this->claim->execute([$token, $row[0]]);
        $this->pdo->commit();
        return [(int) $row[0], $token];
    }

    /** Completes a claimed task; a token that no longer holds it is an error. */
    public function complete(int $id, string $token): void
    {
        $this->complete->execute([null, $id, $token]);
        if ($this->complete->rowCount() !== 1) {
            throw new RuntimeException("floor task #$id: the lease was lost");
        }
    }

    /** A worker: claim + complete until nothing is left. @return array{ids: list<int>} */
    public function drain(): array
    {
        $ids = [];
        while (($claimed = $this->claim()) !== null) {
            $this->complete(...$claimed);
            $ids[] = $claimed[0];
        }
        return ['ids' => $ids];
    }

    public static function empty(PDO $pdo): void
    {
        $pdo->exec('TRUNCATE TABLE floor_tasks');
    }

    /** After an enqueue: exactly $count rows, all pending. */
    public static function checkEnqueued(PDO $pdo, int $count): void
    {
        [$rows, $pending] = $pdo->query("SELECT COUNT(*), COALESCE(SUM(status = 'pending'), 0) FROM floor_tasks")->fetch(PDO::FETCH_NUM);
        if ((int) $rows !== $count || (int) $pending !== $count) {
            throw new RuntimeException("floor: expected $count pending rows, found $rows rows, $pending pending");
        }
    }

    /**
     * After a drain: each row reported by one worker, every row completed, each claimed once.
     *
     * @param list<array{ids: list<int>}> $reports
     */
    public static function checkDrained(PDO $pdo, int $count, array $reports): void
    {
        Checks::idsOnce($reports, $count);
        [$rows, $completed, $once] = $pdo->query(
            "SELECT COUNT(*), COALESCE(SUM(status = 'completed'), 0), COALESCE(SUM(attempts = 1), 0) FROM floor_tasks"
        )->fetch(PDO::FETCH_NUM);
        if ((int) $rows !== $count || (int) $completed !== $count || (int) $once !== $count) {
            throw new RuntimeException("floor: expected $count rows completed after one claim each; $rows rows, $completed completed, $once claimed once");
        }
    }
}
