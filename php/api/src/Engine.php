<?php

declare(strict_types=1);

namespace TaskManager\Api;

use TaskManager\TaskManager;

/**
 * Which engine the API's queue runs on, read from the settings the library itself reads (the
 * config.php constants, else the TASKMANAGER_* variables) by the library's rule: a non-empty
 * `db_path`, or a `sqlite:` `database_url`, selects the embedded engine (one SQLite file);
 * anything else a server.
 *
 * The library answers TM_UNSUPPORTED_SERVER for the calls its embedded engine does not run
 * (flow control, schedules, bulk cancel and retry); on a server that code means the server
 * itself is too old. The API tells the two apart by this, and serves the original's
 * published endpoints (rows of a MySQL table) only on a server.
 */
final class Engine
{
    /** @var array<string, string> the library's environment variables for the keys read here */
    private const ENV = [
        'database_url' => 'TASKMANAGER_DATABASE_URL',
        'db_path' => 'TASKMANAGER_DB_PATH',
        'db_host' => 'TASKMANAGER_DB_HOST',
        'db_hosts' => 'TASKMANAGER_DB_HOSTS',
        'db_port' => 'TASKMANAGER_DB_PORT',
        'db_socket' => 'TASKMANAGER_DB_SOCKET',
        'db_name' => 'TASKMANAGER_DB_NAME',
        'db_user' => 'TASKMANAGER_DB_USER',
        'db_pass' => 'TASKMANAGER_DB_PASS',
        'connect_timeout' => 'TASKMANAGER_CONNECT_TIMEOUT',
    ];

    /**
     * The database settings: from the constants when config.php defines DB_NAME or DB_PATH
     * (TaskManager::getInstance() then ignores the environment), else from the environment.
     *
     * @return array<string, mixed>
     */
    public static function settings(): array
    {
        $config = TaskManager::configFromConstants();
        if ($config !== null) {
            return $config;
        }
        $config = [];
        foreach (self::ENV as $key => $variable) {
            $value = getenv($variable);
            if ($value !== false) {
                $config[$key] = $value;
            }
        }
        return $config;
    }

    /**
     * Whether the queue is a SQLite file (the embedded engine).
     *
     * @param array<string, mixed>|null $settings default: settings()
     */
    public static function embedded(?array $settings = null): bool
    {
        $settings ??= self::settings();
        return (string) ($settings['db_path'] ?? '') !== ''
            || str_starts_with((string) ($settings['database_url'] ?? ''), 'sqlite:');
    }
}
