<?php

declare(strict_types=1);

namespace TaskManager\Tests;

use TaskManager\Exception;
use TaskManager\TaskManager;

/** enqueueWith(): the task exists if and only if the application's transaction commits. */
final class EnqueueWithTest extends TestCase
{
    /** @return iterable<string, array{\Closure(): (\PDO|\mysqli)}> */
    public static function connections(): iterable
    {
        yield 'PDO' => [static function (): \PDO {
            $c = self::config();
            return new \PDO("mysql:host={$c['db_host']};port={$c['db_port']};dbname={$c['db_name']}", $c['db_user'], $c['db_pass'], [\PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION]);
        }];
        yield 'mysqli' => [static function (): \mysqli {
            $c = self::config();
            return new \mysqli($c['db_host'], $c['db_user'], $c['db_pass'], $c['db_name'], $c['db_port']);
        }];
    }

    /** @dataProvider connections */
    public function testRollbackLeavesNothingAndCommitMakesAClaimableTask(\Closure $open): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $conn = $open();
        $params = ['order' => 7, 'note' => "it's \"quoted\"; DROP TABLE tasks; --"];

        $this->begin($conn);
        $queued = $tm->enqueueWith($conn, $type, $params);
        $this->assertFalse($queued['deduplicated']);
        $this->rollback($conn);
        $this->assertSame([], $tm->claim('w', ['types' => [$type]]));
        $ofType = "FROM tasks t JOIN task_types y ON y.id = t.type_id WHERE y.name = '$type'";
        $this->assertSame(0, $this->rows($conn, "SELECT COUNT(*) $ofType"));
        $this->assertSame(0, $this->rows($conn, "SELECT COUNT(*) FROM task_history h WHERE h.task_id IN (SELECT t.id $ofType)"));

        $this->begin($conn);
        $queued = $tm->enqueueWith($conn, $type, $params);
        $again = $tm->enqueueWith($conn, $type, $params);
        $this->assertSame([$queued['id'], true], [$again['id'], $again['deduplicated']]);
        // While the transaction is open, a claim on the library's own connection sees nothing.
        $this->assertSame([], $tm->claim('w', ['types' => [$type]]));
        $this->commit($conn);

        $task = $tm->claim('w', ['types' => [$type]])[0];
        $this->assertSame($queued['id'], $task['id']);
        $this->assertEquals($params, $task['params']);
        $this->assertSame(['created', 'claimed'], array_column($tm->history($queued['id']), 'status_change'));

        $this->expectException(Exception\InvalidArgumentException::class);
        $this->expectExceptionMessage('unique_for_seconds');
        $tm->enqueueWith($conn, $type, ['n' => 1], ['unique_for_seconds' => 60]);
    }

    private function begin(\PDO|\mysqli $conn): void
    {
        $conn instanceof \PDO ? $conn->beginTransaction() : $conn->begin_transaction();
    }

    private function rows(\PDO|\mysqli $conn, string $sql): int
    {
        $result = $conn->query($sql);
        return (int) ($result instanceof \PDOStatement ? $result->fetchColumn() : $result->fetch_row()[0]);
    }

    private function rollback(\PDO|\mysqli $conn): void
    {
        $conn->rollback();
    }

    private function commit(\PDO|\mysqli $conn): void
    {
        $conn->commit();
    }
}
