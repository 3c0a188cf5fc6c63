<?php

declare(strict_types=1);

namespace TaskManager\Api;

/** A JSON answer in the original's envelopes. */
final class Response
{
    /** Sent without its body (the answer to HEAD). */
    public bool $withoutBody = false;

    /** @param array<string, string> $headers */
    public function __construct(
        public readonly int $status,
        public readonly ?array $body,
        public array $headers = [],
        private readonly ?string $text = null,
    ) {
    }

    /** A body that is not JSON (Prometheus metrics, the dashboard). */
    public static function text(string $text, string $contentType): self
    {
        return new self(200, null, ['Content-Type' => $contentType], $text);
    }

    public static function success(string $message, mixed $data, int $status = 200): self
    {
        return new self($status, [
            'success' => true,
            'message' => $message,
            'data' => $data,
            'timestamp' => time(),
        ]);
    }

    public static function error(HttpError $e): self
    {
        $body = [
            'success' => false,
            'error' => $e->getMessage(),
            'message' => $e->getMessage(),
            'timestamp' => time(),
        ];
        if ($e->details !== null) {
            $body['details'] = $e->details;
        }
        if ($e->data !== null) {
            $body['data'] = $e->data;
        }
        return new self($e->status, $body);
    }

    /** OPTIONS: 200 with an empty body. */
    public static function empty(): self
    {
        return new self(200, null);
    }

    public function send(): void
    {
        http_response_code($this->status);
        // PHP announces itself and its version (expose_php); that helps only an attacker.
        header_remove('X-Powered-By');
        foreach ($this->headers as $name => $value) {
            header("$name: $value");
        }
        if ($this->withoutBody) {
            return;
        }
        if ($this->text !== null) {
            echo $this->text;
            return;
        }
        if ($this->body === null) {
            header('Content-Length: 0');
            return;
        }
        header('Content-Type: application/json');
        echo json_encode($this->body, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION | JSON_INVALID_UTF8_SUBSTITUTE);
    }
}
