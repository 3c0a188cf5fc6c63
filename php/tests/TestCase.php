<?php

declare(strict_types=1);

namespace TaskManager\Tests;

use TaskManager\TaskManager;

abstract class TestCase extends \PHPUnit\Framework\TestCase
{
    /**
     * Whether the suite runs on the embedded engine (TASKMANAGER_TEST_ENGINE=sqlite): its
     * databases are then SQLite files, and php/tests/run leaves out, by name, the tests about
     * the server alone.
     */
    public static function sqlite(): bool
    {
        return getenv('TASKMANAGER_TEST_ENGINE') === 'sqlite';
    }

    /** Settings for the suite's database (or another one on the same server, or file). */
    public static function config(?string $database = null, array $extra = []): array
    {
        $db = $database ?? getenv('TM_PHP_TEST_DB');
        if (!$db) {
            self::fail('TM_PHP_TEST_DB is not set: run the suite with php/tests/run');
        }
        if (self::sqlite()) {
            return $extra + ['db_path' => $db];
        }
        return $extra + [
            'db_host' => getenv('TASKMANAGER_TEST_HOST') ?: '127.0.0.1',
            'db_port' => (int) (getenv('TASKMANAGER_TEST_PORT') ?: 3306),
            'db_user' => getenv('TASKMANAGER_TEST_USER') ?: 'taskmanager_test',
            'db_pass' => getenv('TASKMANAGER_TEST_PASS') ?: '',
            'db_name' => $db,
        ];
    }

    /** The suite's database as TASKMANAGER_DATABASE_URL (mysql:// or sqlite:///file). */
    public static function databaseUrl(): string
    {
        $c = self::config();
        if (isset($c['db_path'])) {
            return 'sqlite://' . $c['db_path'];
        }
        return sprintf('mysql://%s:%s@%s:%d/%s', rawurlencode($c['db_user']), rawurlencode($c['db_pass']), $c['db_host'], $c['db_port'], $c['db_name']);
    }

    protected function setUp(): void
    {
        TaskManager::configure(self::config());
        TaskManager::getInstance()->migrate();
    }

    protected function tearDown(): void
    {
        TaskManager::resetInstance();
    }

    /** A type name no other test uses, registered with $schema. */
    protected function newType(array|object $schema = ['type' => 'object']): string
    {
        $name = 'php.' . $this->getName(false) . '.' . bin2hex(random_bytes(4));
        TaskManager::getInstance()->registerType($name, $schema);
        return $name;
    }

    protected static function rssKb(): int
    {
        preg_match('/VmRSS:\s+(\d+) kB/', (string) file_get_contents('/proc/self/status'), $m);
        return (int) $m[1];
    }
}
