<?php

declare(strict_types=1);

namespace TaskManager\Bench;

use PDO;

/**
 * The server and the bench database, from the environment variables the tests and the Rust
 * benchmark read (TASKMANAGER_TEST_HOST, _PORT, _USER, _PASS).
 */
final class Server
{
    public function __construct(
        public readonly string $host,
        public readonly int $port,
        public readonly string $user,
        public readonly string $pass,
        public readonly string $db,
    ) {
    }

    public static function fromEnvironment(string $db): self
    {
        $env = static fn (string $key, string $default): string =>
            ($value = getenv("TASKMANAGER_TEST_$key")) === false ? $default : $value;
        return new self($env('HOST', '127.0.0.1'), (int) $env('PORT', '3306'), $env('USER', 'taskmanager_test'), $env('PASS', ''), $db);
    }

    /**
     * A PDO connection with real server-side prepared statements (emulation off) and errors as
     * exceptions; `$db` null connects without a database (to create or drop it).
     *
     * @param list<string> $init statements run once on the new connection
     */
    public function pdo(?string $db, array $init = []): PDO
    {
        $dsn = sprintf('mysql:host=%s;port=%d;charset=utf8mb4', $this->host, $this->port)
            . ($db === null ? '' : ";dbname=$db");
        $pdo = new PDO($dsn, $this->user, $this->pass, [
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_EMULATE_PREPARES => false,
            PDO::ATTR_STRINGIFY_FETCHES => false,
        ]);
        foreach ($init as $statement) {
            $pdo->exec($statement);
        }
        return $pdo;
    }

    /** The library's configuration for the bench database. @return array<string, mixed> */
    public function libraryConfig(bool $history): array
    {
        return [
            'db_host' => $this->host,
            'db_port' => $this->port,
            'db_user' => $this->user,
            'db_pass' => $this->pass,
            'db_name' => $this->db,
            'enable_task_history' => $history,
            'enable_schema_validation' => true,
        ];
    }

    /** Whether the server runs on this machine, so that its process's CPU time can be read. */
    public function isLocal(): bool
    {
        return in_array($this->host, ['localhost', '::1'], true) || str_starts_with($this->host, '127.');
    }
}

/**
 * The parent's own connection to the bench database, for setting up, emptying and checking
 * between runs. It is closed before every fork: a child that inherited the open connection
 * would end it for the parent too when it exits (PDO sends COM_QUIT on the shared socket).
 */
final class Admin
{
    private static ?Server $server = null;
    private static ?PDO $pdo = null;

    public static function use(Server $server): void
    {
        self::$server = $server;
        self::$pdo = null;
    }

    public static function pdo(): PDO
    {
        return self::$pdo ??= self::$server->pdo(self::$server->db);
    }

    public static function close(): void
    {
        self::$pdo = null;
    }

    /** One value of a one-row query. */
    public static function value(string $sql): mixed
    {
        return self::pdo()->query($sql)->fetchColumn();
    }
}

/**
 * CPU time (user + system) the local MariaDB/MySQL server process has used, read from
 * /proc/<pid>/stat; null when there is no such process to read (another machine, no /proc).
 */
final class ServerCpu
{
    private function __construct(private readonly string $pid, private readonly float $ticksPerSecond)
    {
    }

    public static function find(Server $server): ?self
    {
        if (!$server->isLocal()) {
            return null;
        }
        foreach (glob('/proc/[0-9]*/comm') ?: [] as $comm) {
            $name = trim((string) @file_get_contents($comm));
            if ($name === 'mariadbd' || $name === 'mysqld') {
                $ticks = (int) trim((string) @shell_exec('getconf CLK_TCK 2>/dev/null'));
                return new self(basename(dirname($comm)), $ticks > 0 ? (float) $ticks : 100.0);
            }
        }
        return null;
    }

    public function seconds(): ?float
    {
        $stat = @file_get_contents("/proc/{$this->pid}/stat");
        if ($stat === false) {
            return null;
        }
        // The fields after the command name, which is in parentheses and may hold spaces:
        // utime and stime are the 14th and 15th fields of the line, so the 12th and 13th here.
        $fields = preg_split('/\s+/', trim(substr($stat, strrpos($stat, ')') + 1)));
        return ((float) $fields[11] + (float) $fields[12]) / $this->ticksPerSecond;
    }
}

/** Progress lines on stderr, with the seconds since the start. */
final class Progress
{
    private static ?float $started = null;

    public static function say(string $line): void
    {
        self::$started ??= microtime(true);
        fwrite(STDERR, sprintf("[%5.0fs] %s\n", microtime(true) - self::$started, $line));
    }
}

/** The params numbers {"n": k}: each task of the whole run gets its own, so none is a duplicate. */
final class Numbers
{
    private static int $next = 1;

    /** Reserves $count numbers and returns the first. */
    public static function take(int $count): int
    {
        $first = self::$next;
        self::$next += $count;
        return $first;
    }
}
