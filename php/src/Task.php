<?php

declare(strict_types=1);

namespace TaskManager;

/**
 * A claimed task as a Worker hands it to a handler: what TaskManager::claim() returns, with
 * named properties instead of array keys.
 */
final class Task
{
    /**
     * @param mixed $params the task's parameters, decoded from JSON (objects become arrays)
     * @param (\Closure(int): void)|null $progress records progress while the handler runs
     */
    public function __construct(
        public readonly int $id,
        public readonly string $type,
        public readonly mixed $params,
        public readonly int $priority,
        public readonly int $attempts,
        public readonly int $maxAttempts,
        public readonly string $leaseToken,
        public readonly string $leaseExpiresAt,
        private readonly ?\Closure $progress = null,
    ) {
    }

    /**
     * From one element of TaskManager::claim() (or of completeAndClaim()'s 'claimed').
     *
     * @param array<string, mixed> $row
     * @param (\Closure(int): void)|null $progress
     */
    public static function fromArray(array $row, ?\Closure $progress = null): self
    {
        return new self(
            (int) $row['id'],
            (string) $row['type'],
            $row['params'] ?? null,
            (int) ($row['priority'] ?? 0),
            (int) ($row['attempts'] ?? 0),
            (int) ($row['max_attempts'] ?? 0),
            (string) $row['lease_token'],
            (string) ($row['lease_expires_at'] ?? ''),
            $progress,
        );
    }

    /**
     * The claim() array this task came from, for code written against the plain API.
     *
     * @return array{id: int, type: string, params: mixed, priority: int, attempts: int, max_attempts: int, lease_token: string, lease_expires_at: string}
     */
    public function toArray(): array
    {
        return [
            'id' => $this->id,
            'type' => $this->type,
            'params' => $this->params,
            'priority' => $this->priority,
            'attempts' => $this->attempts,
            'max_attempts' => $this->maxAttempts,
            'lease_token' => $this->leaseToken,
            'lease_expires_at' => $this->leaseExpiresAt,
        ];
    }

    /**
     * Records progress (0..100); a Worker's task also extends its lease with it. A task built
     * without a progress callback (fromArray() alone) ignores the call.
     */
    public function progress(int $percent): void
    {
        if ($percent < 0 || $percent > 100) {
            throw new \InvalidArgumentException("progress must be 0..100, got $percent");
        }
        if ($this->progress !== null) {
            ($this->progress)($percent);
        }
    }
}
