<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * The original's optional security constants in config.php, honoured as it answered them:
 * IP_BLACKLIST_ENABLED + IP_BLACKLIST, IP_WHITELIST_ENABLED + IP_WHITELIST, MAX_REQUEST_SIZE,
 * RATE_LIMIT_ENABLED + RATE_LIMIT_MAX_REQUESTS + RATE_LIMIT_TIME_WINDOW, ENABLE_SECURITY_HEADERS.
 * The checks run on every request before the key is looked at, in the original's order.
 * Unlike the original, the client address is the one Peer trusts, and the rate-limit state
 * is a bounded, locked table (see SlotFile and Limiter).
 */
final class Security
{
    /**
     * @param ?list<string> $blacklist null: the check is off
     * @param ?list<string> $whitelist null or empty: the check is off
     * @param ?int $maxRequestSize bytes; null: the default body limit only
     * @param ?array{0: int, 1: int} $rateLimit [requests, window seconds]; null: off
     */
    public function __construct(
        public readonly ?array $blacklist = null,
        public readonly ?array $whitelist = null,
        public readonly ?int $maxRequestSize = null,
        public readonly ?array $rateLimit = null,
        public readonly bool $headers = false,
    ) {
    }

    public static function fromConstants(): self
    {
        $flag = static fn (string $name): bool => defined($name) && (bool) constant($name);
        $list = static fn (string $name): array => array_values(array_filter(
            array_map('trim', explode(',', defined($name) ? (string) constant($name) : '')),
            static fn (string $ip): bool => $ip !== '',
        ));
        $rate = null;
        if ($flag('RATE_LIMIT_ENABLED')) {
            $rate = [
                max(1, (int) (defined('RATE_LIMIT_MAX_REQUESTS') ? constant('RATE_LIMIT_MAX_REQUESTS') : 100)),
                max(1, (int) (defined('RATE_LIMIT_TIME_WINDOW') ? constant('RATE_LIMIT_TIME_WINDOW') : 60)),
            ];
        }
        return new self(
            $flag('IP_BLACKLIST_ENABLED') ? $list('IP_BLACKLIST') : null,
            $flag('IP_WHITELIST_ENABLED') ? $list('IP_WHITELIST') : null,
            defined('MAX_REQUEST_SIZE') ? max(0, (int) constant('MAX_REQUEST_SIZE')) : null,
            $rate,
            $flag('ENABLE_SECURITY_HEADERS'),
        );
    }

    /** The largest body read: MAX_REQUEST_SIZE, else the API's own default. */
    public function bodyLimit(): int
    {
        return $this->maxRequestSize ?? Request::DEFAULT_BODY_LIMIT;
    }

    /**
     * The original's refusals, in its order: block list, allow list, size, rate. Null when the
     * request may go on; `$passed` gets the rate-limit headers for the answer.
     *
     * @param array<string, string> $passed
     */
    public function refusal(Request $request, Peer $peer, ?StateDir $state, array &$passed): ?Response
    {
        $log = $state === null ? null : new SecurityLog($state);
        if ($this->blacklist !== null && Peer::inList($peer->ip, $this->blacklist)) {
            $log?->write('ip_blocked', $peer, $request);
            return self::refuse(403, 'Access Denied', 'Your IP address has been blocked.');
        }
        if ($this->whitelist !== null && $this->whitelist !== [] && !Peer::inList($peer->ip, $this->whitelist)) {
            $log?->write('ip_not_whitelisted', $peer, $request);
            return self::refuse(403, 'Access Denied', 'Your IP address is not authorized.');
        }
        if ($request->bodyTooLarge) {
            $log?->write('request_too_large', $peer, $request, ['limit' => $this->bodyLimit()]);
            return self::refuse(413, 'Request Too Large',
                'Request body exceeds maximum allowed size of ' . self::size($this->bodyLimit()));
        }
        if ($this->rateLimit === null || $request->method === 'OPTIONS') {
            return null;     // a CORS preflight is the browser's, not a request of the client's
        }
        if ($state === null) {
            throw new \RuntimeException('RATE_LIMIT_ENABLED needs a state directory');
        }
        [$limit, $window] = $this->rateLimit;
        $limiter = new Limiter(new SlotFile($state->file('rate-limit.bin'), 4096), $limit, $window);
        $hit = $limiter->hit($peer->ip . ' ' . $request->path);
        $passed = [
            'X-RateLimit-Limit' => (string) $limit,
            'X-RateLimit-Remaining' => (string) $hit['remaining'],
            'X-RateLimit-Reset' => (string) $hit['reset'],
        ];
        if ($hit['allowed']) {
            return null;
        }
        $log?->write('rate_limit_exceeded', $peer, $request, ['limit' => $limit, 'window' => $window]);
        $response = self::refuse(429, 'Too Many Requests',
            "Rate limit exceeded. Please try again in {$hit['retry_after']} seconds.", [
                'retry_after' => $hit['retry_after'],
                'limit' => $limit,
                'window' => $window,
            ]);
        $response->headers += ['Retry-After' => (string) $hit['retry_after']] + $passed;
        return $response;
    }

    /** ENABLE_SECURITY_HEADERS: the original's set (HSTS only over HTTPS). @return array<string, string> */
    public function headers(Peer $peer): array
    {
        if (!$this->headers) {
            return [];
        }
        $headers = [
            'X-Frame-Options' => 'DENY',
            'X-Content-Type-Options' => 'nosniff',
            'X-XSS-Protection' => '1; mode=block',
            'Referrer-Policy' => 'strict-origin-when-cross-origin',
            'Content-Security-Policy' => "default-src 'none'; frame-ancestors 'none'",
            'Permissions-Policy' => 'geolocation=(), microphone=(), camera=()',
        ];
        if ($peer->https) {
            $headers['Strict-Transport-Security'] = 'max-age=31536000; includeSubDomains';
        }
        return $headers;
    }

    /**
     * The original's refusal body: its own shape (`error` a title, `message` the sentence, an
     * ISO-8601 timestamp), plus `success: false` like every other error of this API.
     *
     * @param array<string, mixed> $extra
     */
    private static function refuse(int $status, string $error, string $message, array $extra = []): Response
    {
        return new Response($status, ['success' => false, 'error' => $error, 'message' => $message]
            + $extra + ['timestamp' => gmdate('c')]);
    }

    /** "1 MB", "512 KB", "1.5 GB": the original's wording of a size. */
    public static function size(int $bytes): string
    {
        $units = ['B', 'KB', 'MB', 'GB'];
        $value = (float) $bytes;
        $unit = 0;
        while ($value >= 1024 && $unit < count($units) - 1) {
            $value /= 1024;
            $unit++;
        }
        return round($value, 2) . ' ' . $units[$unit];
    }
}
