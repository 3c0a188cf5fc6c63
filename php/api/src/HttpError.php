<?php

declare(strict_types=1);

namespace TaskManager\Api;

/** An answer other than success: its status, the text clients read, and optional details. */
final class HttpError extends \RuntimeException
{
    /** @param list<mixed>|null $details */
    public function __construct(
        public readonly int $status,
        string $text,
        public readonly ?array $details = null,
        public readonly mixed $data = null,
    ) {
        parent::__construct($text);
    }

    public static function badRequest(string $text, ?array $details = null): self
    {
        return new self(400, $text, $details);
    }

    public static function missing(string $field): self
    {
        return new self(400, "Missing required field: $field");
    }
}
