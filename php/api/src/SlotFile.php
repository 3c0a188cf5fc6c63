<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * A fixed-size table of small records in one file, shared by every PHP worker through
 * `flock`: rate-limit counters, failed sign-ins, dashboard sessions.
 *
 * Why a file and not the queue database: the API reaches the database only through the
 * library, which has no statements for API state, and PHP here has no MySQL driver of its own.
 * Why fixed size: the key space (client IP x path) is chosen by clients, so a table that grew
 * with every new key could be grown without bound by anyone; here a full bucket evicts its
 * oldest record instead. Every read-modify-write holds an exclusive lock on the file, so
 * concurrent requests cannot lose each other's updates.
 *
 * A record is a key (the first 16 bytes of its SHA-256) and three integers: `time` (a window
 * start or an expiry; 0 marks a free slot, and the smallest is evicted first), `a` and `b`.
 */
final class SlotFile
{
    private const SLOTS_PER_BUCKET = 8;
    private const RECORD = 32;            // 16 key + 8 time + 4 a + 4 b

    public function __construct(private readonly string $file, private readonly int $buckets)
    {
    }

    /**
     * Reads the record of `$key`, lets `$change` decide its new value (null: remove it), and
     * writes that back, all under one lock. Returns what `$change` returned.
     *
     * @param callable(?array{time: int, a: int, b: int}): ?array{time: int, a: int, b: int} $change
     * @return ?array{time: int, a: int, b: int}
     */
    public function update(string $key, callable $change): ?array
    {
        $handle = @fopen($this->file, 'c+');
        if ($handle === false) {
            throw new \RuntimeException("cannot open the state file {$this->file}");
        }
        try {
            if (!flock($handle, LOCK_EX)) {
                throw new \RuntimeException("cannot lock the state file {$this->file}");
            }
            $hash = substr(hash('sha256', $key, true), 0, 16);
            $bucketSize = self::SLOTS_PER_BUCKET * self::RECORD;
            $offset = (unpack('N', $hash)[1] % $this->buckets) * $bucketSize;
            fseek($handle, $offset);
            $bucket = str_pad((string) fread($handle, $bucketSize), $bucketSize, "\0");
            $found = null;
            $victim = 0;
            $victimTime = PHP_INT_MAX;
            for ($slot = 0; $slot < self::SLOTS_PER_BUCKET; $slot++) {
                $record = unpack('a16key/Jtime/Na/Nb', substr($bucket, $slot * self::RECORD, self::RECORD));
                if ($record['time'] !== 0 && $record['key'] === $hash) {
                    $found = $slot;
                    $current = ['time' => $record['time'], 'a' => $record['a'], 'b' => $record['b']];
                    break;
                }
                if ($record['time'] < $victimTime) {
                    $victim = $slot;
                    $victimTime = $record['time'];
                }
            }
            $next = $change($found === null ? null : $current);
            if ($next === null && $found === null) {
                return null;
            }
            $bytes = $next === null
                ? str_repeat("\0", self::RECORD)
                : pack('a16JNN', $hash, max(1, $next['time']), $next['a'], $next['b']);
            fseek($handle, $offset + ($found ?? $victim) * self::RECORD);
            fwrite($handle, $bytes);
            fflush($handle);
            return $next;
        } finally {
            flock($handle, LOCK_UN);
            fclose($handle);
        }
    }
}
