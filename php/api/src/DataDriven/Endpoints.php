<?php

declare(strict_types=1);

namespace TaskManager\Api\DataDriven;

use TaskManager\Api\Engine;
use TaskManager\Api\HttpError;
use TaskManager\Api\Request;
use TaskManager\Api\Response;
use TaskManager\Api\Routes;
use TaskManager\Api\Settings;
use TaskManager\TaskManager;

/**
 * Endpoints published as rows of the original's `api_endpoints` table, checked by its
 * `api_validations`, for the requests the built-in routes do not serve. The built-in routes
 * always win: the original's own seed rows name those paths and are answered through the
 * library. Without the table (it is not part of the migrations) nothing changes.
 */
final class Endpoints
{
    /** The original's custom handlers, served by the built-in route of the same work. */
    private const HANDLERS = [
        'health_check' => ['health', null],
        'task_type_register' => ['registerType', null],
        'task_create' => ['createTask', null],
        'task_claim' => ['claim', null],
        'task_complete' => ['complete', 'id'],
        'task_update_progress' => ['progress', 'id'],
    ];

    /** @var \Closure(): \PDO */
    private readonly \Closure $connect;

    /** @param (\Closure(): \PDO)|null $connect */
    public function __construct(private readonly Settings $settings, ?\Closure $connect = null)
    {
        $this->connect = $connect ?? static fn (): \PDO => Connection::open();
    }

    /**
     * The answer of the published endpoint for this request, or null when none is published
     * (the caller then answers as before: 405 or 404).
     */
    public function serve(Request $request, ?string $presentedKey): ?Response
    {
        // Only a caller with the API key looks rows up: anyone else learns nothing about
        // what is published and cannot make the API query the database.
        try {
            $this->settings->authorize($presentedKey);
        } catch (HttpError) {
            return null;
        }
        if (Engine::embedded()) {
            // The rows are the original's MySQL tables; a SQLite file (the embedded engine)
            // holds none, so the request is answered as an unpublished path (404 or 405).
            return null;
        }
        if (!extension_loaded('pdo_mysql')) {
            // The built-in routes need no PDO; without the driver only rows go unserved.
            error_log('taskmanager api: published endpoints are not served: PHP has no pdo_mysql extension (php8.2-mysql)');
            return null;
        }
        try {
            $db = ($this->connect)();
            $rows = self::rows($db, $request->method);
            if ($rows === null) {
                return null;
            }
            [$endpoint, $path] = self::find($rows, $request->segments) ?? [null, []];
            if ($endpoint === null) {
                return null;
            }
            if (!$endpoint['is_active']) {
                throw new HttpError(503, 'Endpoint is not active');
            }
            $template = new Template([
                'body' => $request->method === 'GET' ? new \stdClass() : $request->json(),
                'query' => $request->query,
                'path' => $path,
                'headers' => $request->headers,
            ]);
            $statement = $db->prepare('SELECT param_name, param_source, validation_rules_json, error_message FROM api_validations WHERE endpoint_id = ? ORDER BY id');
            $statement->execute([$endpoint['id']]);
            Validator::check($statement->fetchAll(), $template);
            $config = json_decode((string) $endpoint['action_config_json'], true);
            if (!is_array($config)) {
                throw new ConfigError('action_config_json is not a JSON object');
            }
            if ($endpoint['action_type'] === 'custom') {
                return self::custom($config, $request, $path, $this->settings->claimWaitCap);
            }
            $data = (new Executor($db, $template))->run((string) $endpoint['action_type'], $config);
            return Response::success('Success', $data);
        } catch (ConfigError $e) {
            $where = isset($endpoint) ? sprintf(' (endpoint %d, %s %s)', $endpoint['id'], $endpoint['method'], $endpoint['path']) : '';
            error_log('taskmanager api: published endpoint' . $where . ': ' . $e->getMessage());
            throw new HttpError(500, 'Endpoint configuration error: ' . $e->getMessage());
        } catch (\PDOException $e) {
            throw self::failure($e);
        }
    }

    /**
     * The rows of this method, in id order; null when the table does not exist.
     *
     * @return list<array<string, mixed>>|null
     */
    private static function rows(\PDO $db, string $method): ?array
    {
        try {
            $statement = $db->prepare('SELECT id, path, method, action_type, action_config_json, is_active FROM api_endpoints WHERE method = ? ORDER BY id');
            $statement->execute([$method]);
        } catch (\PDOException $e) {
            if ($e->getCode() === '42S02') {
                return null;
            }
            throw $e;
        }
        return $statement->fetchAll();
    }

    /**
     * The exact row for the path (active or not) first, else the first active row whose
     * pattern matches; `:name` segments take one whole segment each. Matched segment by
     * segment on the decoded path, so no pattern is ever compiled into a regex.
     *
     * @param list<array<string, mixed>> $rows
     * @param list<string> $segments
     * @return array{0: array<string, mixed>, 1: array<string, string>}|null
     */
    private static function find(array $rows, array $segments): ?array
    {
        foreach ($rows as $row) {
            if (self::segments((string) $row['path']) === $segments) {
                return [$row, []];
            }
        }
        foreach ($rows as $row) {
            if (!$row['is_active']) {
                continue;
            }
            $pattern = self::segments((string) $row['path']);
            if (count($pattern) !== count($segments)) {
                continue;
            }
            $params = [];
            foreach ($pattern as $i => $part) {
                if (preg_match('/^:([A-Za-z0-9_]+)$/', $part, $m)) {
                    $params[$m[1]] = $segments[$i];
                } elseif ($part !== $segments[$i]) {
                    continue 2;
                }
            }
            return [$row, $params];
        }
        return null;
    }

    /** @return list<string> */
    private static function segments(string $path): array
    {
        return array_values(array_filter(explode('/', $path), static fn (string $s): bool => $s !== ''));
    }

    /**
     * @param array<string, mixed> $config
     * @param array<string, string> $path
     */
    private static function custom(array $config, Request $request, array $path, float $claimWaitCap): Response
    {
        $handler = $config['handler'] ?? null;
        if (!is_string($handler) || !isset(self::HANDLERS[$handler])) {
            throw new ConfigError('unknown custom handler: use ' . implode(', ', array_keys(self::HANDLERS)));
        }
        [$method, $param] = self::HANDLERS[$handler];
        $routes = new Routes(static fn (): TaskManager => TaskManager::getInstance(), $claimWaitCap);
        if ($param === null) {
            return $routes->$method($request);
        }
        if (!isset($path[$param])) {
            throw new ConfigError("custom handler $handler needs a :$param segment in the path");
        }
        return $routes->$method($request, $path[$param]);
    }

    /**
     * A database error: what the request's values caused is the client's (400 / 409), the
     * rest is a 500; the server's message, which may quote SQL, goes to the log only.
     */
    private static function failure(\PDOException $e): HttpError
    {
        $state = (string) $e->getCode();
        error_log('taskmanager api: published endpoint: SQLSTATE ' . $state . ': ' . $e->getMessage());
        return match (true) {
            $state === '23000' => new HttpError(409, 'Conflict: the change breaks a unique key or a reference'),
            str_starts_with($state, '22') => HttpError::badRequest('A value does not fit its column'),
            // An unknown table or column: the row names something the database lacks.
            str_starts_with($state, '42') => new HttpError(500, 'Endpoint configuration error: the database refused the statement; see the server log'),
            default => new HttpError(500, 'Internal server error'),
        };
    }
}
