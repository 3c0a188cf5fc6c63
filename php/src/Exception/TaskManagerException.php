<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/**
 * Base class of every error the library reports. Carries the stable `tm_code` number
 * (see Code) and, where the library gave them, structured details.
 */
class TaskManagerException extends \RuntimeException
{
    /** @param array<string, mixed>|null $details */
    public function __construct(
        string $message,
        private readonly int $tmCode,
        private readonly ?array $details = null,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, $tmCode, $previous);
    }

    /** The library's error code, e.g. Code::LEASE_LOST (204). Same as getCode(). */
    public function getTmCode(): int
    {
        return $this->tmCode;
    }

    /** @return array<string, mixed>|null structured details, e.g. ['server_code' => 1213] */
    public function getDetails(): ?array
    {
        return $this->details;
    }
}
