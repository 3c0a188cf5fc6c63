<?php

declare(strict_types=1);

namespace TaskManager\Tests;

use TaskManager\TaskManager;

/**
 * The original config.php style: constants defined before getInstance(). Runs in its own
 * process because constants cannot be undefined.
 *
 * @runTestsInSeparateProcesses
 * @preserveGlobalState disabled
 */
final class ConstantsConfigTest extends TestCase
{
    protected function setUp(): void
    {
        TaskManager::resetInstance();
    }

    public function testTheOriginalConstantsConfigureTheSingleton(): void
    {
        $c = self::config();
        define('DB_HOST', $c['db_host'] . ':' . $c['db_port']); // the original allowed host:port
        define('DB_NAME', $c['db_name']);
        define('DB_USER', $c['db_user']);
        define('DB_PASS', $c['db_pass']);
        define('DB_CHARSET', 'utf8mb4');
        define('TASK_CLAIM_TIMEOUT', 77);
        define('MAX_TASK_ATTEMPTS', 7);
        define('ENABLE_TASK_HISTORY', false);
        define('ENABLE_SCHEMA_VALIDATION', false);

        $tm = TaskManager::getInstance();
        $tm->migrate();
        $type = 'php.constants.' . bin2hex(random_bytes(4));
        $tm->registerType($type, ['type' => 'object', 'required' => ['must']]);
        // Validation is off: params that do not match are stored.
        $id = $tm->enqueue($type, ['other' => 1])['id'];
        $task = $tm->claim('w', ['types' => [$type]])[0];
        $this->assertSame(7, $task['max_attempts']);
        $lease = strtotime($task['lease_expires_at']) - time();
        $this->assertGreaterThanOrEqual(70, $lease);
        $this->assertLessThanOrEqual(78, $lease);
        $this->assertSame([], $tm->history($id), 'history is off');
    }
}
