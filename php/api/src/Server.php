<?php

declare(strict_types=1);

namespace TaskManager\Api;

use TaskManager\Exception\TaskManagerException;
use TaskManager\TaskManager;

/**
 * Dispatches a request: CORS, OPTIONS, auth, the route, and the mapping of every failure to
 * a status and a text a client can act on. A 500 never carries the library's message (it may
 * quote the server's); the full error goes to the PHP error log.
 */
final class Server
{
    /** method, path pattern (`{x}` takes one segment), handler, whether it needs the key */
    private const ROUTES = [
        ['GET', 'health', 'health', false],
        ['GET', 'openapi.json', 'openapi', true],
        ['GET', 'metrics', 'metrics', true],
        ['POST', 'task-types/register', 'registerType', true],
        ['GET', 'task-types', 'listTypes', true],
        ['GET', 'task-types/{name}', 'getType', true],
        ['POST', 'task-types/{name}/pause', 'pauseType', true],
        ['POST', 'task-types/{name}/resume', 'resumeType', true],
        ['PUT', 'task-types/{name}/limits', 'setTypeLimits', true],
        ['POST', 'tasks', 'createTask', true],
        ['GET', 'tasks', 'listTasks', true],
        ['POST', 'tasks/claim', 'claim', true],
        ['GET', 'tasks/{id}', 'getTask', true],
        ['POST', 'tasks/{id}/complete', 'complete', true],
        ['POST', 'tasks/{id}/progress', 'progress', true],
        ['GET', 'schedules', 'listSchedules', true],
        ['POST', 'schedules/tick', 'tickSchedules', true],
        ['GET', 'schedules/{name}', 'getSchedule', true],
        ['PUT', 'schedules/{name}', 'putSchedule', true],
        ['DELETE', 'schedules/{name}', 'deleteSchedule', true],
    ];

    public function __construct(private readonly ?Settings $settings, private readonly ?\Throwable $settingsError = null)
    {
    }

    public static function fromEnvironment(string $apiDir): self
    {
        try {
            return new self(Settings::load($apiDir));
        } catch (\Throwable $e) {
            return new self(null, $e);
        }
    }

    /** The largest request body to read (MAX_REQUEST_SIZE, else the default). */
    public function bodyLimit(): int
    {
        return $this->settings?->security->bodyLimit() ?? Request::DEFAULT_BODY_LIMIT;
    }

    public function handle(Request $request): Response
    {
        $cors = $this->settings?->corsHeaders($request->header('Origin'))
            ?? ['Access-Control-Allow-Origin' => '*'];
        $peer = Peer::of($request, $this->settings?->trustedProxies ?? []);
        $head = $request->method === 'HEAD';
        $rateHeaders = [];
        try {
            $response = $this->settings?->security->refusal($request, $peer, $this->settings->state, $rateHeaders);
            if ($response === null && $request->bodyTooLarge) {
                // Settings unreadable: the default limit still holds.
                $response = (new Security())->refusal($request, $peer, null, $rateHeaders);
            }
            if ($response === null) {
                $response = $request->method === 'OPTIONS'
                    ? Response::empty()
                    : $this->route($head ? $request->asGet() : $request, $peer);
            }
        } catch (HttpError $e) {
            $response = Response::error($e);
        } catch (TaskManagerException $e) {
            $response = Response::error(Failure::fromLibrary($e));
        } catch (\Throwable $e) {
            error_log('taskmanager api: ' . get_class($e) . ': ' . $e->getMessage());
            $response = Response::error(new HttpError(500, 'Internal server error'));
        }
        // The dashboard's pages set their own policy; what a response set itself wins.
        $response->headers += $cors + $rateHeaders + ($this->settings?->security->headers($peer) ?? []);
        // Browsers must not guess another type than the one declared (a JSON error must never
        // become HTML), whatever the security settings say.
        $response->headers['X-Content-Type-Options'] = 'nosniff';
        $response->withoutBody = $head;
        return $response;
    }

    private function route(Request $request, Peer $peer): Response
    {
        foreach ($request->query as $name => $value) {
            if (!is_string($value)) {
                // `?status[]=x` arrives as an array; every parameter of this API is one value.
                throw HttpError::badRequest("Query parameter $name must be given once, as a single value");
            }
        }
        if (($request->segments[0] ?? null) === 'dashboard') {
            if ($this->settings === null) {
                throw new HttpError(500, 'Server configuration error: the API settings could not be read; see the server log');
            }
            return (new Dashboard($this->settings, static fn (): TaskManager => TaskManager::getInstance(), $peer))
                ->handle($request, array_slice($request->segments, 1));
        }
        $path = implode('/', $request->segments);
        $allowed = [];
        foreach (self::ROUTES as [$method, $pattern, $handler, $needsKey]) {
            $params = self::match($pattern, $request->segments);
            if ($params === null) {
                continue;
            }
            if ($method !== $request->method) {
                $allowed[] = $method;
                continue;
            }
            if ($this->settings === null) {
                error_log('taskmanager api: settings: ' . $this->settingsError?->getMessage());
                throw new HttpError(500, 'Server configuration error: the API settings could not be read; see the server log');
            }
            if ($needsKey) {
                try {
                    $this->settings->authorize(self::presentedKey($request));
                } catch (HttpError $e) {
                    if ($e->status === 401 && $this->settings->state !== null) {
                        // The original logged the first 8 characters of the key tried; a
                        // fingerprint lets an operator tell attempts apart without writing
                        // any part of a secret (a key from another system, say) to a file.
                        $tried = self::presentedKey($request);
                        (new SecurityLog($this->settings->state))->write('auth_failed', $peer, $request, [
                            'key_fingerprint' => $tried === null ? null : substr(hash('sha256', $tried), 0, 8),
                        ]);
                    }
                    throw $e;
                }
            }
            return (new Routes(static fn (): TaskManager => TaskManager::getInstance(), $this->settings->claimWaitCap))
                ->$handler($request, ...$params);
        }
        // Rows of the original's api_endpoints table publish what the routes above do not serve.
        $published = $this->settings === null ? null
            : (new DataDriven\Endpoints($this->settings))->serve($request, self::presentedKey($request));
        if ($published !== null) {
            return $published;
        }
        if ($allowed !== []) {
            $error = new HttpError(405, "Method not allowed: use " . implode(' or ', $allowed) . " for /$path");
            $response = Response::error($error);
            $response->headers['Allow'] = implode(', ', $allowed);
            return $response;
        }
        throw new HttpError(404, 'Endpoint not found');
    }

    /**
     * The key a client presents: `X-API-Key`, or `Authorization: Bearer KEY` (what Prometheus
     * and most HTTP tools can send without a custom header).
     */
    private static function presentedKey(Request $request): ?string
    {
        $key = $request->header('X-API-Key');
        if ($key !== null) {
            return $key;
        }
        $authorization = (string) $request->header('Authorization');
        return preg_match('/^Bearer\s+(\S+)$/i', $authorization, $m) ? $m[1] : null;
    }

    /**
     * The values of a pattern's `{x}` segments, or null when the path does not match.
     *
     * @param list<string> $segments
     * @return list<string>|null
     */
    private static function match(string $pattern, array $segments): ?array
    {
        $parts = explode('/', $pattern);
        if (count($parts) !== count($segments)) {
            return null;
        }
        $params = [];
        foreach ($parts as $i => $part) {
            if (str_starts_with($part, '{')) {
                $params[] = $segments[$i];
            } elseif ($part !== $segments[$i]) {
                return null;
            }
        }
        return $params;
    }
}
