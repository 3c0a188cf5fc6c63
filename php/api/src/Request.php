<?php

declare(strict_types=1);

namespace TaskManager\Api;

/** What a client asked: method, path segments (URL-decoded), query, headers, JSON body. */
final class Request
{
    /** A body larger than this is refused unless MAX_REQUEST_SIZE says otherwise. */
    public const DEFAULT_BODY_LIMIT = 2 * 1024 * 1024;

    /**
     * @param list<string> $segments
     * @param array<string, mixed> $query
     * @param array<string, string> $headers lower-case names
     * @param array<string, string> $cookies
     * @param bool $bodyTooLarge the body was over the limit and was not read
     */
    public function __construct(
        public readonly string $method,
        public readonly array $segments,
        public readonly array $query,
        public readonly array $headers,
        private readonly string $body,
        public readonly array $cookies = [],
        public readonly string $path = '/',
        public readonly string $remoteAddr = '',
        public readonly bool $https = false,
        public readonly bool $bodyTooLarge = false,
    ) {
    }

    /** The same request as a GET: HEAD is answered as GET without the body. */
    public function asGet(): self
    {
        return new self('GET', $this->segments, $this->query, $this->headers, $this->body, $this->cookies,
            $this->path, $this->remoteAddr, $this->https, $this->bodyTooLarge);
    }

    /** The body as an HTML form (`application/x-www-form-urlencoded`). @return array<string, mixed> */
    public function form(): array
    {
        parse_str($this->body, $fields);
        return $fields;
    }

    /**
     * The request PHP received. The body is read only up to `$bodyLimit` bytes: a larger one
     * (by its Content-Length, or by what arrives when there is none) is left unread and
     * flagged, so it never reaches memory or json_decode.
     */
    public static function fromGlobals(int $bodyLimit = self::DEFAULT_BODY_LIMIT): self
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
        $body = '';
        $tooLarge = (int) ($_SERVER['CONTENT_LENGTH'] ?? 0) > $bodyLimit;
        if (!$tooLarge) {
            $input = fopen('php://input', 'rb');
            $body = $input === false ? '' : (string) stream_get_contents($input, $bodyLimit + 1);
            $tooLarge = strlen($body) > $bodyLimit;
            $body = $tooLarge ? '' : $body;
        }
        $https = (string) ($_SERVER['HTTPS'] ?? '');
        return new self(
            strtoupper((string) ($_SERVER['REQUEST_METHOD'] ?? 'GET')),
            self::segments($path, self::basePath()),
            $_GET,
            $headers,
            $body,
            // A cookie sent twice under one name arrives as an array: it is nobody's session.
            array_map(static fn ($v): string => is_string($v) ? $v : '', $_COOKIE),
            $path,
            (string) ($_SERVER['REMOTE_ADDR'] ?? ''),
            $https !== '' && strtolower($https) !== 'off',
            $tooLarge,
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
        self::refuseWideIntegers($this->body);
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

    /**
     * Integers beyond 64 bits are refused: PHP would turn them into strings (or lose digits as
     * floats), and a task's params would then hold something other than what was sent.
     * Strings are skipped whole, so digits inside them do not count.
     */
    private static function refuseWideIntegers(string $json): void
    {
        $found = preg_match_all('/"(?:[^"\\\\]++|\\\\.)*+"|(?<![\w.+-])-?\d{19,}+(?![.eE\d])/', $json, $matches);
        if ($found === false) {
            throw HttpError::badRequest('Invalid JSON in request body');
        }
        foreach ($matches[0] as $token) {
            if ($token[0] === '"') {
                continue;
            }
            $negative = $token[0] === '-';
            $digits = ltrim($negative ? substr($token, 1) : $token, '0');
            $bound = $negative ? '9223372036854775808' : '9223372036854775807';
            if (strlen($digits) > 19 || (strlen($digits) === 19 && strcmp($digits, $bound) > 0)) {
                throw HttpError::badRequest('Integers must fit in 64 bits (from -9223372036854775808 to 9223372036854775807)');
            }
        }
    }
}
