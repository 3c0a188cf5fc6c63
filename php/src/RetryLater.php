<?php

declare(strict_types=1);

namespace TaskManager;

/**
 * Throw from a Worker handler to retry the task after a fixed delay instead of the
 * exponential backoff (the attempt still counts).
 */
class RetryLater extends \RuntimeException
{
    public function __construct(string $message = 'retry later', public readonly int $seconds = 60, ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }
}
