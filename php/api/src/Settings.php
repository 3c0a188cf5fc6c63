<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * The API's settings: the original `config.php` (found through TASKMANAGER_CONFIG or next to
 * index.php) and the TASKMANAGER_* environment variables, which win. The database settings
 * themselves are read by TaskManager::getInstance() from the same constants or variables.
 */
final class Settings
{
    /**
     * @param list<string> $corsOrigins empty: any origin (`*`)
     * @param ?string $dashboardPassword the dashboard's own password; without it the API key
     *   opens the dashboard
     * @param list<string> $trustedProxies addresses (or CIDR ranges) whose X-Forwarded-For counts
     * @param float $claimWaitCap the longest a claim's `wait_seconds` may hold a request (see Flow)
     */
    public function __construct(
        public readonly ?string $apiKey,
        public readonly array $corsOrigins,
        public readonly ?string $dashboardPassword = null,
        public readonly Security $security = new Security(),
        public readonly array $trustedProxies = [],
        public readonly ?StateDir $state = null,
        public readonly float $claimWaitCap = Flow::DEFAULT_WAIT_CAP,
    ) {
    }

    /**
     * What opens the dashboard: its own password, else the API key. Null when neither is set
     * (or the key is empty): the dashboard is then closed, never open to anyone.
     */
    public function dashboardSecret(): ?string
    {
        foreach ([$this->dashboardPassword, $this->apiKey] as $secret) {
            if ($secret !== null && $secret !== '') {
                return $secret;
            }
        }
        return null;
    }

    public static function load(string $apiDir): self
    {
        $file = getenv('TASKMANAGER_CONFIG') ?: $apiDir . '/config.php';
        if (is_file($file)) {
            require_once $file;
        } elseif (getenv('TASKMANAGER_CONFIG')) {
            throw new \RuntimeException("TASKMANAGER_CONFIG names $file, which does not exist");
        }
        $key = getenv('TASKMANAGER_API_KEY');
        if ($key === false) {
            $key = defined('API_KEY') ? (string) constant('API_KEY') : null;
        }
        $origins = getenv('TASKMANAGER_CORS_ALLOWED_ORIGINS');
        if ($origins === false) {
            $origins = defined('CORS_ALLOWED_ORIGINS') ? constant('CORS_ALLOWED_ORIGINS') : [];
        }
        if (is_string($origins)) {
            $origins = explode(',', $origins);
        }
        $origins = array_values(array_filter(array_map(
            static fn ($o): string => trim((string) $o),
            (array) $origins
        ), static fn (string $o): bool => $o !== '' && $o !== '*'));
        $dashboard = getenv('TASKMANAGER_DASHBOARD_PASSWORD');
        if ($dashboard === false) {
            $dashboard = defined('DASHBOARD_PASSWORD') ? (string) constant('DASHBOARD_PASSWORD') : null;
        }
        $proxies = getenv('TASKMANAGER_TRUSTED_PROXIES');
        if ($proxies === false) {
            $proxies = defined('TRUSTED_PROXIES') ? constant('TRUSTED_PROXIES') : [];
        }
        $proxies = array_values(array_filter(
            array_map(static fn ($p): string => trim((string) $p), is_string($proxies) ? explode(',', $proxies) : (array) $proxies),
            static fn (string $p): bool => $p !== '',
        ));
        $state = getenv('TASKMANAGER_STATE_DIR');
        if ($state === false || $state === '') {
            $state = defined('STATE_DIR') && constant('STATE_DIR') !== ''
                ? (string) constant('STATE_DIR')
                // One directory per installation (config file and API directory).
                : sys_get_temp_dir() . '/taskmanager-api-' . substr(hash('sha256', realpath($file) . '|' . realpath($apiDir)), 0, 16);
        }
        $wait = getenv('TASKMANAGER_CLAIM_MAX_WAIT_SECONDS');
        if ($wait === false) {
            $wait = defined('CLAIM_MAX_WAIT_SECONDS') ? constant('CLAIM_MAX_WAIT_SECONDS') : null;
        }
        if ($wait !== null && !is_numeric($wait)) {
            throw new \RuntimeException('CLAIM_MAX_WAIT_SECONDS must be a number of seconds');
        }
        return new self($key, $origins, $dashboard, Security::fromConstants(), $proxies, new StateDir(rtrim($state, '/')),
            Flow::waitCap($wait === null ? null : (float) $wait));
    }

    /**
     * Whether the request may pass. No key configured at all is a configuration error (never
     * an open API); an empty key turns authentication off, as the original did.
     */
    public function authorize(?string $presented): void
    {
        if ($this->apiKey === null) {
            throw new HttpError(500, 'Server configuration error: no API key is configured (define API_KEY in config.php or set TASKMANAGER_API_KEY; an empty value turns authentication off)');
        }
        if ($this->apiKey === '') {
            return;
        }
        if ($presented === null || !hash_equals($this->apiKey, $presented)) {
            throw new HttpError(401, 'Invalid or missing API key');
        }
    }

    /** @return array<string, string> */
    public function corsHeaders(?string $origin): array
    {
        $headers = [
            'Access-Control-Allow-Methods' => 'GET, POST, PUT, DELETE, OPTIONS',
            'Access-Control-Allow-Headers' => 'Content-Type, Authorization, X-API-Key',
        ];
        if ($this->corsOrigins === []) {
            $headers['Access-Control-Allow-Origin'] = '*';
        } else {
            $headers['Vary'] = 'Origin';
            if ($origin !== null && in_array($origin, $this->corsOrigins, true)) {
                $headers['Access-Control-Allow-Origin'] = $origin;
            }
        }
        return $headers;
    }
}
