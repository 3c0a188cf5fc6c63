<?php

declare(strict_types=1);

namespace TaskManager\Api;

/** The OpenAPI 3.1 description of the routes, for client generators and people. */
final class OpenApi
{
    /**
     * path => [method, summary, success status, request body fields, query parameters]; a
     * field is a JSON type name or a whole schema.
     */
    private const OPERATIONS = [
        '/health' => [['get', 'Service and database health (no API key needed)', 200, [], []]],
        '/metrics' => [['get', 'The queue in Prometheus text exposition (counts, oldest pending, expired leases, last hour)', 200, [], []]],
        '/task-types/register' => [['post', 'Register a task type, or a new version of it', 201, ['name' => 'string', 'version' => 'string', 'param_schema' => 'object'], []]],
        '/task-types' => [['get', 'List task types', 200, [], ['active_only' => 'boolean']]],
        '/task-types/{name}' => [['get', 'Get a task type by name, with its flow control state (paused, paused_until, max_running, rate)', 200, [], []]],
        '/task-types/{name}/pause' => [['post', 'Pause a type: claims that begin after this hand out none of its tasks until it is resumed or until passes (enqueues still work; claimed tasks finish). Answers the type', 200, ['until' => ['type' => 'string', 'description' => 'UTC time to resume by itself, RFC 3339 (2026-12-24T18:00:00Z) or 2026-12-24 18:00:00; in the future and at most a year ahead. Left out: paused until resumed']], []]],
        '/task-types/{name}/resume' => [['post', 'Resume a paused type. Answers the type', 200, [], []]],
        '/task-types/{name}/limits' => [['put', 'Set a type\'s limits: at most max_running tasks holding a lease at once, and at most rate.limit + rate.burst starts in any rate.per_seconds window. A field left out keeps its value; null removes the limit. Limited tasks stay pending and spend no attempt. Answers the type', 200, [
            'max_running' => ['type' => ['integer', 'null'], 'minimum' => 1, 'maximum' => 100000],
            'rate' => ['type' => ['object', 'null'], 'required' => ['limit', 'per_seconds'], 'additionalProperties' => false, 'properties' => [
                'limit' => ['type' => 'integer', 'minimum' => 1, 'maximum' => 1000000],
                'per_seconds' => ['type' => 'integer', 'minimum' => 1, 'maximum' => 31536000],
                'burst' => ['type' => 'integer', 'minimum' => 0, 'maximum' => 1000000, 'default' => 0],
            ]],
        ], []]],
        '/tasks' => [
            ['post', 'Create a task (deduplicated by type and params)', 201, ['type' => 'string', 'params' => 'object', 'priority' => 'integer', 'delay_seconds' => 'number', 'run_at' => 'string', 'max_attempts' => 'integer', 'dedupe_key' => 'string', 'dedupe_scope' => 'string', 'unique_for_seconds' => 'integer'], []],
            ['get', 'List tasks, newest first', 200, [], ['status' => 'string', 'type' => 'string', 'limit' => 'integer', 'offset' => 'integer']],
        ],
        '/tasks/claim' => [['post', 'Claim the next runnable task (404 when there is none; its data.next_allowed_at says when a paused-until or rate-limited type may start its next task, or is null)', 200, ['worker_id' => 'string', 'task_type_id' => 'integer', 'type_pattern' => 'string', 'sort_by' => 'string', 'sort_order' => 'string', 'lease_seconds' => 'integer', 'wait_seconds' => ['type' => 'number', 'minimum' => 0, 'maximum' => 60, 'description' => 'When nothing is claimable, wait up to this long for a task instead of answering 404 at once. Held to this server\'s cap of {cap} seconds (CLAIM_MAX_WAIT_SECONDS), so a request never holds a PHP worker longer']], []]],
        '/tasks/{id}' => [['get', 'Get a task', 200, [], []]],
        '/tasks/{id}/complete' => [['post', 'Complete or fail a claimed task (by lease_token, or by worker_id without one)', 200, ['worker_id' => 'string', 'lease_token' => 'string', 'success' => 'boolean', 'result' => 'object', 'error' => 'string'], []]],
        '/tasks/{id}/progress' => [['post', 'Report progress 0..100 on a claimed task and extend its lease', 200, ['worker_id' => 'string', 'lease_token' => 'string', 'progress' => 'integer', 'message' => 'string'], []]],
        '/schedules' => [['get', 'List recurring schedules with their next run times (UTC)', 200, [], []]],
        '/schedules/tick' => [['post', 'Enqueue every due occurrence of every schedule now (each exactly once, however many callers tick)', 200, [], []]],
        '/schedules/{name}' => [
            ['get', 'Get a schedule', 200, [], []],
            ['put', 'Create or replace a schedule: a task of type with params at every occurrence of cron in timezone; misfire is skip, once or backfill', 200, ['type' => 'string', 'cron' => 'string', 'timezone' => 'string', 'params' => 'object', 'enabled' => 'boolean', 'misfire' => 'string', 'misfire_grace_seconds' => 'integer'], []],
            ['delete', 'Delete a schedule (its tasks stay)', 200, [], []],
        ],
    ];

    /**
     * The paths of the server engine's features (flow control, schedules): on the embedded
     * engine (the queue in one SQLite file) they answer 501.
     */
    private const SERVER_ONLY = ['/task-types/{name}/pause', '/task-types/{name}/resume', '/task-types/{name}/limits', '/schedules', '/schedules/tick', '/schedules/{name}'];

    /**
     * @param float $waitCap the server's cap on a claim's wait_seconds (Settings)
     * @return array<string, mixed>
     */
    public static function document(float $waitCap = Flow::DEFAULT_WAIT_CAP): array
    {
        $cap = rtrim(rtrim(sprintf('%.3F', $waitCap), '0'), '.');
        $paths = [];
        foreach (self::OPERATIONS as $path => $operations) {
            foreach ($operations as [$method, $summary, $status, $fields, $query]) {
                $operation = [
                    'summary' => $summary,
                    'responses' => [
                        (string) $status => ['description' => 'Success envelope', 'content' => ['application/json' => ['schema' => ['$ref' => '#/components/schemas/Success']]]],
                        'default' => ['description' => 'Error envelope', 'content' => ['application/json' => ['schema' => ['$ref' => '#/components/schemas/Error']]]],
                    ],
                ];
                if (in_array($path, self::SERVER_ONLY, true)) {
                    $operation['responses']['501'] = [
                        'description' => 'The queue is a SQLite file (the embedded engine), which does not run this: it needs a MySQL or MariaDB database. The error names the call',
                        'content' => ['application/json' => ['schema' => ['$ref' => '#/components/schemas/Error']]],
                    ];
                }
                $parameters = [];
                preg_match_all('/\{(\w+)\}/', $path, $names);
                foreach ($names[1] as $name) {
                    $parameters[] = ['name' => $name, 'in' => 'path', 'required' => true, 'schema' => ['type' => $name === 'id' ? 'integer' : 'string']];
                }
                foreach ($query as $name => $type) {
                    $parameters[] = ['name' => $name, 'in' => 'query', 'required' => false, 'schema' => ['type' => $type]];
                }
                if ($parameters !== []) {
                    $operation['parameters'] = $parameters;
                }
                if ($fields !== []) {
                    $properties = [];
                    foreach ($fields as $name => $type) {
                        $properties[$name] = is_string($type) ? ['type' => $type] : $type;
                        if (isset($properties[$name]['description'])) {
                            $properties[$name]['description'] = str_replace('{cap}', $cap, $properties[$name]['description']);
                        }
                    }
                    $operation['requestBody'] = ['content' => ['application/json' => ['schema' => ['type' => 'object', 'properties' => $properties]]]];
                }
                if ($path !== '/health') {
                    $operation['security'] = [['apiKey' => []]];
                }
                $paths[$path][$method] = $operation;
            }
        }
        return [
            'openapi' => '3.1.0',
            'info' => ['title' => 'TaskManager API', 'version' => \TaskManager\TaskManager::version()],
            'servers' => [['url' => '/api']],
            'paths' => $paths,
            'components' => [
                'securitySchemes' => ['apiKey' => ['type' => 'apiKey', 'in' => 'header', 'name' => 'X-API-Key']],
                'schemas' => [
                    'Success' => ['type' => 'object', 'required' => ['success', 'message', 'data', 'timestamp'], 'properties' => [
                        'success' => ['const' => true], 'message' => ['type' => 'string'], 'data' => [], 'timestamp' => ['type' => 'integer'],
                    ]],
                    'Error' => ['type' => 'object', 'required' => ['success', 'error', 'message', 'timestamp'], 'properties' => [
                        'success' => ['const' => false], 'error' => ['type' => 'string'], 'message' => ['type' => 'string'],
                        'details' => ['type' => 'array'], 'timestamp' => ['type' => 'integer'],
                        'data' => ['description' => 'Facts about the refusal, when there are some (a claim that found nothing: next_allowed_at)'],
                    ]],
                ],
            ],
        ];
    }
}
