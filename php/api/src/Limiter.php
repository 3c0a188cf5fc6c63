<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * At most `limit` events per `window` seconds for each key, counted in a SlotFile.
 *
 * A sliding-window estimate rather than the original's window fixed at the first request,
 * which let a client send twice the limit across a window's end: the previous window's count
 * is weighted by how much of it still overlaps the last `window` seconds. A refused event is
 * not counted, so a client that keeps knocking is let back in once its rate drops.
 */
final class Limiter
{
    public function __construct(
        private readonly SlotFile $slots,
        public readonly int $limit,
        public readonly int $window,
    ) {
    }

    /**
     * Counts one event for `$key` unless that would go over the limit.
     *
     * @return array{allowed: bool, remaining: int, reset: int, retry_after: int}
     *   reset: when the current window ends (unix seconds); retry_after: seconds to wait
     */
    public function hit(string $key, ?int $now = null): array
    {
        $now ??= time();
        $start = $now - $now % $this->window;
        $allowed = false;
        $used = 0;
        $counts = [0, 0];
        $this->slots->update($key, function (?array $record) use ($start, $now, &$allowed, &$used, &$counts): array {
            [$current, $previous] = match (true) {
                $record === null || $record['time'] < $start - $this->window => [0, 0],
                $record['time'] < $start => [0, $record['a']],
                default => [$record['a'], $record['b']],
            };
            $used = $current + (int) ceil($previous * (1 - ($now - $start) / $this->window));
            $allowed = $used < $this->limit;
            if ($allowed) {
                $current++;
                $used++;
            }
            $counts = [$current, $previous];
            return ['time' => $start, 'a' => $current, 'b' => $previous];
        });
        $reset = $start + $this->window;
        $retryAfter = $allowed ? 0 : max(1, $this->waitFor($counts[0], $counts[1], $start) - $now);
        return [
            'allowed' => $allowed,
            'remaining' => max(0, $this->limit - $used),
            'reset' => $allowed ? $reset : $now + $retryAfter,
            'retry_after' => $retryAfter,
        ];
    }

    /** Forgets `$key` (a successful sign-in clears its failures). */
    public function clear(string $key): void
    {
        $this->slots->update($key, static fn (): ?array => null);
    }

    /**
     * When the estimate drops below the limit again (unix seconds): the weight of the older
     * window has to fall far enough, in this window or, when this one is full, the next.
     */
    private function waitFor(int $current, int $previous, int $start): int
    {
        $room = $this->limit - 1;
        if ($current >= $this->limit) {
            return $start + $this->window + (int) ceil($this->window * (1 - $room / $current));
        }
        return $start + (int) ceil($this->window * (1 - ($room - $current) / max(1, $previous)));
    }
}
