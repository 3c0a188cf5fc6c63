<?php

declare(strict_types=1);

namespace TaskManager\Api\DataDriven;

use TaskManager\Api\Engine;

/**
 * The PDO connection for published endpoints, opened from the settings the library itself
 * reads (the original's config.php constants, else the TASKMANAGER_* variables), so one
 * configuration serves both.
 */
final class Connection
{
    public static function open(): \PDO
    {
        $config = Engine::settings();
        if (isset($config['database_url'])) {
            $config = self::fromUrl((string) $config['database_url']) + $config;
        }
        $name = (string) ($config['db_name'] ?? '');
        if ($name === '') {
            throw new \RuntimeException('published endpoints: no database name configured');
        }
        $options = [
            \PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION,
            \PDO::ATTR_DEFAULT_FETCH_MODE => \PDO::FETCH_ASSOC,
            // Server-side prepared statements: values travel beside the SQL text, never
            // inside it (emulation would splice escaped values into the text).
            \PDO::ATTR_EMULATE_PREPARES => false,
            \PDO::ATTR_TIMEOUT => (int) ($config['connect_timeout'] ?? 10),
            // Times read as UTC, as the library and the built-in routes show them.
            \PDO::MYSQL_ATTR_INIT_COMMAND => "SET time_zone = '+00:00'",
        ];
        $user = (string) ($config['db_user'] ?? '');
        $pass = (string) ($config['db_pass'] ?? '');
        $socket = (string) ($config['db_socket'] ?? '');
        if ($socket !== '') {
            return new \PDO("mysql:unix_socket=$socket;dbname=$name;charset=utf8mb4", $user, $pass, $options);
        }
        $last = null;
        // Several hosts are tried in order, as the library fails over between them.
        foreach (self::hosts($config) as [$host, $port]) {
            try {
                return new \PDO("mysql:host=$host;port=$port;dbname=$name;charset=utf8mb4", $user, $pass, $options);
            } catch (\PDOException $e) {
                $last = $e;
            }
        }
        throw $last ?? new \RuntimeException('published endpoints: no database host configured');
    }

    /**
     * mysql://user:pass@host:port/database?socket=PATH, as the library reads it.
     *
     * @return array<string, string>
     */
    private static function fromUrl(string $url): array
    {
        if (!preg_match('#^(?:mysql|mariadb)://([^/]*)/([^?]*)(?:\?(.*))?$#', $url, $m)) {
            throw new \RuntimeException('published endpoints: database_url is not mysql://user:pass@host/database');
        }
        $at = strrpos($m[1], '@');
        $userinfo = $at === false ? '' : substr($m[1], 0, $at);
        [$user, $pass] = array_pad(explode(':', $userinfo, 2), 2, '');
        $config = [
            'db_hosts' => $at === false ? $m[1] : substr($m[1], $at + 1),
            'db_name' => rawurldecode($m[2]),
            'db_user' => rawurldecode($user),
            'db_pass' => rawurldecode($pass),
        ];
        parse_str($m[3] ?? '', $query);
        if (isset($query['socket']) && is_string($query['socket'])) {
            $config['db_socket'] = $query['socket'];
        }
        return $config;
    }

    /**
     * host, host:port, [IPv6]:port, separated by commas (DB_HOST may hold "host:port").
     *
     * @param array<string, mixed> $config
     * @return list<array{0: string, 1: int}>
     */
    private static function hosts(array $config): array
    {
        $port = (int) ($config['db_port'] ?? 3306);
        $text = (string) ($config['db_host'] ?? $config['db_hosts'] ?? '');
        $hosts = [];
        foreach (array_filter(array_map('trim', explode(',', $text))) as $entry) {
            if (preg_match('/^\[([^\]]+)\](?::(\d+))?$/', $entry, $m)) {
                $hosts[] = [$m[1], isset($m[2]) ? (int) $m[2] : $port];
            } elseif (substr_count($entry, ':') === 1) {
                [$host, $p] = explode(':', $entry);
                $hosts[] = [$host, (int) $p];
            } else {
                $hosts[] = [$entry, $port];
            }
        }
        return $hosts === [] ? [['localhost', $port]] : $hosts;
    }
}
