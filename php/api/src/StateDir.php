<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * The directory where the API keeps what must outlive one request: rate-limit counters,
 * failed sign-ins, dashboard sessions, the key that signs them, and the security log.
 *
 * STATE_DIR in config.php (or TASKMANAGER_STATE_DIR) names it; it must be outside the web
 * root. Without it, a directory per installation under the system's temporary directory is
 * used: it survives restarts of PHP, but not a reboot that clears that directory or a PHP-FPM
 * unit with PrivateTmp (then sessions end and counters start again), hence the setting.
 */
final class StateDir
{
    public function __construct(public readonly string $path)
    {
    }

    /** The directory, created (owner only) on first use. */
    public function file(string $name): string
    {
        if (!is_dir($this->path) && !@mkdir($this->path, 0700, true) && !is_dir($this->path)) {
            throw new \RuntimeException("cannot create the state directory {$this->path} (set STATE_DIR to a writable directory outside the web root)");
        }
        return $this->path . '/' . $name;
    }

    /**
     * The dashboard's signing key: 32 random bytes made once and kept in the directory, so a
     * restart keeps sessions. Written to a temporary name and linked into place, so two first
     * requests at once agree on one key and nobody reads a half-written file.
     */
    public function secretKey(): string
    {
        $file = $this->file('session.key');
        $key = @file_get_contents($file);
        if (is_string($key) && strlen($key) === 32) {
            return $key;
        }
        $temporary = $file . '.' . bin2hex(random_bytes(8));
        file_put_contents($temporary, random_bytes(32));
        chmod($temporary, 0600);
        @link($temporary, $file);       // fails when another request linked its key first
        unlink($temporary);
        $key = (string) file_get_contents($file);
        if (strlen($key) !== 32) {
            throw new \RuntimeException("the session key file $file is damaged: delete it to make a new one");
        }
        return $key;
    }
}
