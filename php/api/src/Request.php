<?php

declare(strict_types=1);

namespace TaskManager\Api;

/** What a client asked: method, path segments (URL-decoded), query, headers, JSON body. */
final class Request
{
    /**
     * @param list<string> $segments
     * @param array<string, mixed> $query
     * @param array<string, string> $headers lower-case names
     * @param array<string, string> $cookies
     */
    public function __construct(
        public readonly string $method,
        public readonly array $segments,
        public readonly array $query,
        public readonly array $headers,
        private readonly string $body,
        public readonly array $cookies = [],
        public readonly string $path = '/',
    ) {
    }

    /** The body as an HTML form (`application/x-www-form-urlencoded`). @return array<string, mixed> */
    public function form(): array
    {
        parse_str($this->body, $fields);
        return $fields;
    }

    public static function fromGlobals(): self
    {
        $headers = [];
        foreach ($_SERVER as $key => $value) {
            if (str_starts_with((string) $key, 'HTTP_')) {
                $headers[strtolower(str_replace('_', '-', substr((string) $key, 5)))] = (string) $value;
            }
        }
        // PHP-FPM behind Apache often hands Authorization over only as REDIRECT_HTTP_AUTHORIZATION.
        if (!isset($headers['authorization']) && isset($_SERVER['REDIRECT_HTTP_AUTHORIZATION'])) {
            $headers['authorization'] = (string) $_SERVER['REDIRECT_HTTP_AUTHORIZATION'];
        }
        if (isset($_SERVER['CONTENT_TYPE'])) {
            $headers['content-type'] = (string) $_SERVER['CONTENT_TYPE'];
        }
        $path = (string) parse_url((string) ($_SERVER['REQUEST_URI'] ?? '/'), PHP_URL_PATH);
        return new self(
            strtoupper((string) ($_SERVER['REQUEST_METHOD'] ?? 'GET')),
            self::segments($path, self::basePath()),
            $_GET,
            $headers,
            (string) file_get_contents('php://input'),
            array_map('strval', $_COOKIE),
            $path,
        );
    }

    /**
     * The directory the API is served from under Apache (`/queue` for /queue/index.php); the
     * built-in server routes every path to the script, so there it is the root.
     */
    private static function basePath(): string
    {
        if (PHP_SAPI === 'cli-server') {
            return '';
        }
        $dir = str_replace('\\', '/', dirname((string) ($_SERVER['SCRIPT_NAME'] ?? '/')));
        return rtrim($dir, '/');
    }

    /**
     * Path segments after the base path and an optional leading `/api`, each URL-decoded
     * (type names hold dots and may hold escaped characters). Only a leading `api` segment is
     * removed: `/task-types/api.sync` keeps its name.
     *
     * @return list<string>
     */
    public static function segments(string $path, string $base = ''): array
    {
        if ($base !== '' && ($path === $base || str_starts_with($path, $base . '/'))) {
            $path = substr($path, strlen($base));
        }
        $raw = array_values(array_filter(explode('/', $path), static fn (string $s): bool => $s !== ''));
        if (($raw[0] ?? null) === 'api') {
            array_shift($raw);
        }
        return array_map('rawurldecode', $raw);
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    /**
     * The body as a JSON object; an empty body is an empty object. Objects stay objects
     * (stdClass), so `{}` params are not turned into a list.
     */
    public function json(): \stdClass
    {
        if (trim($this->body) === '') {
            return new \stdClass();
        }
        try {
            $value = json_decode($this->body, false, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
        } catch (\JsonException) {
            throw HttpError::badRequest('Invalid JSON in request body');
        }
        if (!$value instanceof \stdClass) {
            throw HttpError::badRequest('The request body must be a JSON object');
        }
        return $value;
    }
}
