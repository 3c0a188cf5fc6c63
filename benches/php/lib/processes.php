<?php

declare(strict_types=1);

namespace TaskManager\Bench;

use RuntimeException;

/**
 * Producers and workers as forked processes, as PHP runs them (one process per worker, no
 * threads), timed from the first one's start of work to the last one's end.
 *
 * Each process first gets ready, untimed: it opens its connections (the library's client, a
 * PDO connection) and prepares its statements. Then it waits at a barrier until every process
 * is ready, so process start, library load and connecting stay out of the figure and the
 * processes really run side by side (a late one would otherwise find part of the work done).
 */
final class Processes
{
    /** The exit code of a process that was ready but stopped because another one was not. */
    private const STOPPED = 2;

    /**
     * Runs $count processes. In each, `$prepare($index)` gets ready and returns the timed work,
     * a callable that returns the process's report (an array, e.g. the ids it completed).
     *
     * @param callable(int): (callable(): array<string, mixed>) $prepare
     * @return array{seconds: float, reports: list<array<string, mixed>>, server_cpu: ?float}
     *         server_cpu: the server's CPU seconds from the start to the end, when $cpu can read it
     */
    public static function run(int $count, callable $prepare, ?ServerCpu $cpu = null): array
    {
        Admin::close();
        $channels = [];
        $pids = [];
        for ($index = 0; $index < $count; $index++) {
            $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
            if ($pair === false) {
                throw new RuntimeException('cannot create a socket pair');
            }
            $pid = pcntl_fork();
            if ($pid === -1) {
                throw new RuntimeException('pcntl_fork failed');
            }
            if ($pid === 0) {
                fclose($pair[0]);
                foreach ($channels as $inherited) {
                    fclose($inherited);
                }
                exit(self::child($index, $pair[1], $prepare));
            }
            fclose($pair[1]);
            $channels[] = $pair[0];
            $pids[] = $pid;
        }

        $ready = 0;
        foreach ($channels as $channel) {
            $ready += fgets($channel) === "ready\n" ? 1 : 0;
        }
        $go = $ready === $count;
        $before = $go ? $cpu?->seconds() : null;
        foreach ($channels as $channel) {
            @fwrite($channel, $go ? "go\n" : "stop\n");
        }
        $spans = [];
        $reports = [];
        if ($go) {
            foreach ($channels as $channel) {
                $line = fgets($channel);
                $message = $line === false ? null : json_decode($line, true, 512, JSON_THROW_ON_ERROR);
                if (is_array($message)) {
                    $spans[] = [$message['start'], $message['end']];
                    $reports[] = $message['report'];
                }
            }
        }
        $after = $before === null ? null : $cpu?->seconds();
        foreach ($channels as $channel) {
            fclose($channel);
        }

        $failed = 0;
        foreach ($pids as $pid) {
            pcntl_waitpid($pid, $status);
            $code = pcntl_wifexited($status) ? pcntl_wexitstatus($status) : -1;
            $failed += $code === 0 || $code === self::STOPPED ? 0 : 1;
        }
        if ($failed > 0 || count($reports) !== $count) {
            throw new RuntimeException(sprintf('%d of %d processes failed (their errors are above)', max($failed, 1), $count));
        }
        return [
            'seconds' => max(array_column($spans, 1)) - min(array_column($spans, 0)),
            'reports' => $reports,
            'server_cpu' => $after === null ? null : $after - $before,
        ];
    }

    /**
     * The child's side: get ready, wait for the start, work, report. Its exit code is the
     * function's value; errors go to stderr, the parent fails the run.
     *
     * @param resource $channel
     */
    private static function child(int $index, $channel, callable $prepare): int
    {
        try {
            $work = $prepare($index);
            self::send($channel, "ready\n");
            if (fgets($channel) !== "go\n") {
                return self::STOPPED;
            }
            $start = microtime(true);
            $report = $work();
            $end = microtime(true);
            self::send($channel, json_encode(['start' => $start, 'end' => $end, 'report' => $report], JSON_THROW_ON_ERROR) . "\n");
            return 0;
        } catch (\Throwable $e) {
            fwrite(STDERR, sprintf("process %d (pid %d): %s: %s\n", $index, getmypid(), $e::class, $e->getMessage()));
            return 1;
        }
    }

    /** @param resource $channel */
    private static function send($channel, string $data): void
    {
        while ($data !== '') {
            $written = fwrite($channel, $data);
            if ($written === false || $written === 0) {
                throw new RuntimeException('the parent stopped listening');
            }
            $data = substr($data, $written);
        }
    }
}
