<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * Security events as JSON lines (time, event, IP, user agent, request URI, details), as the
 * original wrote them, but in the state directory rather than beside the API (where the web
 * server could serve it). At 10 MB the file moves to `security.log.1`, replacing the one
 * before, so a flood of refused requests cannot fill the disk. The same line goes to PHP's
 * error log, where operators already look.
 */
final class SecurityLog
{
    private const MAX_BYTES = 10 * 1024 * 1024;

    public function __construct(private readonly StateDir $state)
    {
    }

    /** @param array<string, mixed> $details */
    public function write(string $event, Peer $peer, Request $request, array $details = []): void
    {
        $line = json_encode([
            'time' => gmdate('c'),
            'event' => $event,
            'ip' => $peer->ip,
            'user_agent' => (string) $request->header('User-Agent'),
            'request_uri' => $request->path,
            'details' => (object) $details,
        ], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
        error_log('taskmanager api: security: ' . $line);
        try {
            $file = $this->state->file('security.log');
            clearstatcache(true, $file);
            if (@filesize($file) > self::MAX_BYTES) {
                @rename($file, $file . '.1');
            }
            file_put_contents($file, $line . "\n", FILE_APPEND | LOCK_EX);
        } catch (\Throwable $e) {
            // The event is in the error log already; a full disk must not turn a 403 into a 500.
            error_log('taskmanager api: cannot write the security log: ' . $e->getMessage());
        }
    }
}
