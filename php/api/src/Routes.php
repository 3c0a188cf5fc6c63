<?php

declare(strict_types=1);

namespace TaskManager\Api;

use TaskManager\Exception\NotFoundException;
use TaskManager\Exception\TaskManagerException;
use TaskManager\TaskManager;

/**
 * One method per route of the original API (see the route table in Server). Each checks its
 * input, makes one library call (claim: one claim), and shapes the answer as the original
 * did: ids as integers, times as "YYYY-MM-DD HH:MM:SS" UTC.
 */
final class Routes
{
    private const SORT_FIELDS = ['created_at', 'priority', 'id', 'attempts'];

    /**
     * Nothing to claim. The original's PHP worker looks for "No available tasks" in `error`,
     * its integration tests for "no tasks" in `message`: this text holds both.
     */
    public const NOTHING_TO_CLAIM = 'No available tasks: there are no tasks to claim';

    /**
     * @param \Closure(): TaskManager $queue opened on first use: /health must not fail early
     * @param float $claimWaitCap the longest a claim may wait for a task (see Flow::waitCap)
     */
    public function __construct(private readonly \Closure $queue, private readonly float $claimWaitCap = Flow::DEFAULT_WAIT_CAP)
    {
    }

    private function tm(): TaskManager
    {
        return ($this->queue)();
    }

    public function health(Request $request): Response
    {
        try {
            $this->tm()->listTypes();
        } catch (TaskManagerException $e) {
            error_log('taskmanager api: health: ' . $e->getMessage());
            throw new HttpError(503, 'Database unreachable', null, ['status' => 'unhealthy', 'database' => 'unreachable']);
        }
        return Response::success('Service is healthy', ['status' => 'healthy', 'database' => 'connected']);
    }

    public function openapi(Request $request): Response
    {
        $response = new Response(200, OpenApi::document($this->claimWaitCap));
        return $response;
    }

    /** The queue's figures in Prometheus text exposition, for a scraper that sends the key. */
    public function metrics(Request $request): Response
    {
        return Response::text($this->tm()->metrics(), 'text/plain; version=0.0.4; charset=utf-8');
    }

    public function registerType(Request $request): Response
    {
        $body = $request->json();
        foreach (['name', 'version', 'param_schema'] as $field) {
            if (!isset($body->$field) || $body->$field === '') {
                throw HttpError::missing($field);
            }
        }
        $name = self::text($body->name, 'name');
        if (!is_string($body->version) && !is_int($body->version)) {
            throw HttpError::badRequest('version must be a string such as "1.0.0"');
        }
        $schema = $body->param_schema;
        if (is_string($schema)) {
            $schema = json_decode($schema);
            if (!$schema instanceof \stdClass) {
                throw HttpError::badRequest('param_schema must be a JSON object (or a string holding one)');
            }
        } elseif (!$schema instanceof \stdClass) {
            throw HttpError::badRequest('param_schema must be a JSON object (or a string holding one)');
        }
        $existed = true;
        try {
            $this->tm()->getType($name);
        } catch (NotFoundException) {
            $existed = false;
        }
        $type = $this->tm()->registerType($name, $schema, $body->version);
        $data = ['id' => $type['id'], 'name' => $type['name'], 'version' => $type['version']];
        if (!$existed) {
            return Response::success('Task type registered successfully', $data + ['created' => true], 201);
        }
        return Response::success('Task type updated successfully', $data + ['updated' => true]);
    }

    public function getType(Request $request, string $name): Response
    {
        try {
            $type = $this->tm()->getType($name);
        } catch (NotFoundException) {
            throw new HttpError(404, 'Task type not found');
        } catch (TaskManagerException $e) {
            // A name the library refuses (too long, control characters) names no type.
            if ($e->getTmCode() === \TaskManager\Code::INVALID_ARGUMENT) {
                throw new HttpError(404, 'Task type not found');
            }
            throw $e;
        }
        return Response::success('Task type retrieved successfully', self::type($type));
    }

    /**
     * Pauses a type: claims that begin after it hand out none of its tasks (enqueues still
     * work, claimed tasks finish). Body (optional): `until`, a UTC time; without it the type
     * stays paused until resumed.
     */
    public function pauseType(Request $request, string $name): Response
    {
        $options = Flow::pauseOptions($request->json());
        $type = $this->tm()->pauseType($name, $options['until'] ?? null);
        return Response::success('Task type paused', self::type($type));
    }

    public function resumeType(Request $request, string $name): Response
    {
        return Response::success('Task type resumed', self::type($this->tm()->resumeType($name)));
    }

    /**
     * Sets a type's limits: `max_running` and `rate` (`{"limit", "per_seconds", "burst"}`);
     * a field left out keeps its value, null removes that limit.
     */
    public function setTypeLimits(Request $request, string $name): Response
    {
        $limits = Flow::limits($request->json());
        return Response::success('Task type limits saved', self::type($this->tm()->setTypeLimits($name, $limits)));
    }

    public function listTypes(Request $request): Response
    {
        $activeOnly = filter_var($request->query['active_only'] ?? false, FILTER_VALIDATE_BOOLEAN);
        $types = array_values(array_filter(
            array_map(static fn (array $t): array => self::type($t), $this->tm()->listTypes()),
            static fn (array $t): bool => !$activeOnly || $t['is_active'],
        ));
        return Response::success('Task types retrieved successfully', ['task_types' => $types, 'count' => count($types)]);
    }

    public function createTask(Request $request): Response
    {
        $body = $request->json();
        if (!isset($body->type) || $body->type === '') {
            throw HttpError::missing('type');
        }
        $type = self::text($body->type, 'type');
        $params = $body->params ?? new \stdClass();
        if (!$params instanceof \stdClass && !is_array($params)) {
            throw HttpError::badRequest('params must be a JSON object');
        }
        $priority = self::integer($body->priority ?? 0, 'priority', -2147483648, 2147483647);
        $options = ['priority' => $priority] + self::enqueueOptions($body);
        try {
            $task = $this->tm()->enqueue($type, $params, $options);
        } catch (NotFoundException) {
            throw new HttpError(404, 'Task type not found');
        }
        if ($task['deduplicated']) {
            return Response::success('Task already exists (deduplicated)', [
                'id' => $task['id'],
                'status' => $task['status'],
                'deduplicated' => true,
            ]);
        }
        return Response::success('Task created successfully', [
            'id' => $task['id'],
            'type' => $type,
            'status' => $task['status'],
            'priority' => $priority,
            'dedupe_key' => $task['dedupe_key'],
        ], 201);
    }

    public function claim(Request $request): Response
    {
        $body = $request->json();
        if (!isset($body->worker_id) || $body->worker_id === '') {
            throw HttpError::missing('worker_id');
        }
        $worker = self::text($body->worker_id, 'worker_id');
        $options = [];
        $sortBy = $body->sort_by ?? 'created_at';
        if (!is_string($sortBy) || !in_array($sortBy, self::SORT_FIELDS, true)) {
            throw HttpError::badRequest('Invalid sort_by field. Allowed values: ' . implode(', ', self::SORT_FIELDS));
        }
        $sortOrder = $body->sort_order ?? 'ASC';
        if (!is_string($sortOrder) || !in_array(strtoupper($sortOrder), ['ASC', 'DESC'], true)) {
            throw HttpError::badRequest('Invalid sort_order. Allowed values: ASC, DESC');
        }
        $options['sort_by'] = $sortBy;
        $options['sort_order'] = strtolower($sortOrder);
        if (isset($body->lease_seconds)) {
            $options['lease_seconds'] = self::integer($body->lease_seconds, 'lease_seconds', 1, 31536000);
        }
        if (isset($body->task_type_id)) {
            $typeId = $body->task_type_id;
            // Digits that fit in 64 bits only: a wider string would saturate to PHP_INT_MAX.
            if (is_string($typeId) && ctype_digit($typeId) && strlen($typeId) <= 18) {
                $typeId = (int) $typeId;
            }
            if (!is_int($typeId) || $typeId < 1) {
                throw HttpError::badRequest('task_type_id must be a positive integer');
            }
            $options['type_ids'] = [$typeId];
        }
        if (isset($body->type_pattern)) {
            // Matched by the library against the names in the database (LIKE, the column's
            // case-insensitive collation); a malformed pattern is its 400.
            $options['type_pattern'] = self::text($body->type_pattern, 'type_pattern');
        }
        $wait = Flow::waitSeconds($body, $this->claimWaitCap);
        if ($wait !== null && $wait > 0) {
            $options['wait_seconds'] = $wait;
        }
        $claimed = $this->tm()->claim($worker, $options);
        if ($claimed === []) {
            // Nothing (after the wait): one more claim, without waiting, that also says when a
            // paused-until or rate-limited type with runnable tasks may start one again. Only
            // here: a claim that asks for the report does not take the stored procedures' path.
            unset($options['wait_seconds']);
            $report = $this->tm()->claimReport($worker, $options);
            if ($report['tasks'] === []) {
                throw new HttpError(404, self::NOTHING_TO_CLAIM, null, ['next_allowed_at' => self::time($report['next_allowed_at'] ?? null)]);
            }
            $claimed = $report['tasks'];
        }
        $task = $claimed[0];
        return Response::success('Task claimed successfully', [
            'id' => $task['id'],
            'type' => $task['type'],
            'params' => self::object($task['params']),
            'priority' => $task['priority'],
            'attempts' => $task['attempts'],
            'lease_token' => $task['lease_token'],
            'lease_expires_at' => self::time($task['lease_expires_at']),
        ]);
    }

    public function complete(Request $request, string $id): Response
    {
        $taskId = self::taskId($id);
        $body = $request->json();
        [$worker, $token] = self::holder($body);
        $success = $body->success ?? true;
        if (!is_bool($success)) {
            throw HttpError::badRequest('success must be true or false');
        }
        $tm = $this->tm();
        try {
            if ($success) {
                $result = $body->result ?? null;
                $done = $token !== null
                    ? $tm->complete($taskId, $token, $result)
                    : $tm->completeAsWorker($taskId, $worker, $result);
            } else {
                $error = isset($body->error) ? self::text($body->error, 'error') : 'failed';
                $done = $token !== null
                    ? $tm->fail($taskId, $token, $error)
                    : $tm->failAsWorker($taskId, $worker, $error);
            }
        } catch (NotFoundException) {
            throw new HttpError(404, 'Task not found');
        }
        return Response::success('Task completed successfully', ['id' => $done['id'], 'status' => $done['status']]);
    }

    public function progress(Request $request, string $id): Response
    {
        $taskId = self::taskId($id);
        $body = $request->json();
        [$worker, $token] = self::holder($body);
        if (!isset($body->progress)) {
            throw HttpError::missing('progress');
        }
        $progress = self::integer($body->progress, 'progress');
        if ($progress < 0 || $progress > 100) {
            throw HttpError::badRequest('progress must be an integer from 0 to 100');
        }
        $options = ['progress' => $progress];
        if (isset($body->message)) {
            // The original recorded it with the progress: kept in the task's history.
            $options['message'] = self::text($body->message, 'message');
        }
        try {
            $beat = $token !== null
                ? $this->tm()->heartbeat($taskId, $token, $options)
                : $this->tm()->heartbeatAsWorker($taskId, $worker, $options);
        } catch (NotFoundException) {
            throw new HttpError(404, 'Task not found');
        }
        return Response::success('Progress updated successfully', ['id' => $beat['id'], 'progress' => $beat['progress']]);
    }

    public function getTask(Request $request, string $id): Response
    {
        try {
            $task = $this->tm()->getTask(self::taskId($id));
        } catch (NotFoundException) {
            throw new HttpError(404, 'Task not found');
        }
        return Response::success('Task retrieved successfully', [
            'id' => $task['id'],
            'type' => $task['type'],
            'status' => $task['status'],
            'params' => self::object($task['params']),
            'result' => $task['result'],
            'error_message' => $task['error_message'],
            'priority' => $task['priority'],
            'progress' => $task['progress'],
            'attempts' => $task['attempts'],
            'claimed_by' => $task['claimed_by'],
            'claimed_at' => self::time($task['claimed_at']),
            'completed_at' => self::time($task['completed_at']),
            'created_at' => self::time($task['created_at']),
        ]);
    }

    public function listTasks(Request $request): Response
    {
        $filter = [];
        foreach (['limit' => [1, 1000, 50], 'offset' => [0, 1000000, 0]] as $name => [$min, $max, $default]) {
            $value = $request->query[$name] ?? (string) $default;
            if (!is_string($value) || !ctype_digit($value) || (int) $value < $min || (int) $value > $max) {
                throw HttpError::badRequest("Invalid $name: must be an integer from $min to $max");
            }
            $filter[$name] = (int) $value;
        }
        foreach (['status', 'type'] as $name) {
            if (isset($request->query[$name]) && $request->query[$name] !== '') {
                $filter[$name] = (string) $request->query[$name];
            }
        }
        $tasks = array_map(static fn (array $t): array => [
            'id' => $t['id'],
            'type' => $t['type'],
            'status' => $t['status'],
            'priority' => $t['priority'],
            'progress' => $t['progress'],
            'attempts' => $t['attempts'],
            'claimed_by' => $t['claimed_by'],
            'created_at' => self::time($t['created_at']),
            'completed_at' => self::time($t['completed_at']),
        ], $this->tm()->listTasks($filter));
        return Response::success('Tasks retrieved successfully', $tasks);
    }

    // -- input and output shapes ---------------------------------------------------------------

    /**
     * Who finishes the task: the lease token when given (fenced), else the worker id (the
     * original's rule).
     *
     * @return array{0: ?string, 1: ?string}
     */
    private static function holder(\stdClass $body): array
    {
        $token = isset($body->lease_token) && $body->lease_token !== '' ? self::text($body->lease_token, 'lease_token') : null;
        $worker = isset($body->worker_id) && $body->worker_id !== '' ? self::text($body->worker_id, 'worker_id') : null;
        if ($worker === null && $token === null) {
            throw HttpError::missing('worker_id');
        }
        return [$worker, $token];
    }

    private static function taskId(string $segment): int
    {
        if (!ctype_digit($segment) || (int) $segment < 1 || strlen($segment) > 18) {
            throw HttpError::badRequest('Task id must be a positive integer');
        }
        return (int) $segment;
    }

    /** Every schedule with its next run. */
    public function listSchedules(Request $request): Response
    {
        $schedules = array_map(static fn (array $s): array => self::schedule($s), $this->tm()->scheduleList());
        return Response::success('Schedules retrieved successfully', ['schedules' => $schedules, 'count' => count($schedules)]);
    }

    public function getSchedule(Request $request, string $name): Response
    {
        return Response::success('Schedule retrieved successfully', self::schedule($this->tm()->scheduleGet($name)));
    }

    /**
     * Creates or replaces the schedule named in the path. Body: type, cron (required),
     * timezone, params, enabled, misfire, misfire_grace_seconds; a bad field is a 400 whose
     * message names it.
     */
    public function putSchedule(Request $request, string $name): Response
    {
        $body = (array) $request->json();
        foreach (['type', 'cron'] as $field) {
            if (!isset($body[$field]) || $body[$field] === '') {
                throw HttpError::missing($field);
            }
            self::text($body[$field], $field);
        }
        $schedule = $this->tm()->schedulePut(['name' => $name] + $body);
        $created = $schedule['changed'] && $schedule['created_at'] === $schedule['updated_at'];
        return Response::success(
            $created ? 'Schedule created successfully' : 'Schedule saved successfully',
            self::schedule($schedule) + ['changed' => $schedule['changed']],
            $created ? 201 : 200,
        );
    }

    public function deleteSchedule(Request $request, string $name): Response
    {
        return Response::success('Schedule deleted successfully', self::schedule($this->tm()->scheduleDelete($name)));
    }

    /** Enqueues every due occurrence now, for a cron job that calls the API. */
    public function tickSchedules(Request $request): Response
    {
        $report = $this->tm()->schedulesTick();
        return Response::success(sprintf('Enqueued %d task(s)', count($report['enqueued'])), $report);
    }

    /** @param array<string, mixed> $s */
    private static function schedule(array $s): array
    {
        return [
            'id' => $s['id'],
            'name' => $s['name'],
            'type' => $s['type'],
            'cron' => $s['cron'],
            'timezone' => $s['timezone'],
            'params' => self::object($s['params']),
            'enabled' => $s['enabled'],
            'misfire' => $s['misfire'],
            'misfire_grace_seconds' => $s['misfire_grace_seconds'],
            'next_run_at' => self::time($s['next_run_at']),
            'last_run_at' => self::time($s['last_run_at']),
            'created_at' => self::time($s['created_at']),
            'updated_at' => self::time($s['updated_at']),
        ];
    }

    private static function text(mixed $value, string $field): string
    {
        if (!is_string($value)) {
            throw HttpError::badRequest("$field must be a string");
        }
        return $value;
    }

    /**
     * An integer field, also given as digits in a string (the original's clients send both).
     * With a range, a value outside it is refused here in the API's words; the library's own
     * refusal of a wide number would read "expected i32".
     */
    private static function integer(mixed $value, string $field, ?int $min = null, ?int $max = null): int
    {
        if (is_string($value) && preg_match('/^-?\d{1,10}$/', $value)) {
            $value = (int) $value;
        }
        if (!is_int($value)) {
            throw HttpError::badRequest("$field must be an integer");
        }
        if (($min !== null && $value < $min) || ($max !== null && $value > $max)) {
            throw HttpError::badRequest("$field must be an integer from $min to $max");
        }
        return $value;
    }

    /**
     * The library's enqueue options, each checked for its type here so that a wrong one is
     * answered in the API's words (the library's would name Rust types).
     *
     * @return array<string, mixed>
     */
    private static function enqueueOptions(\stdClass $body): array
    {
        $options = [];
        if (isset($body->delay_seconds)) {
            if (!is_int($body->delay_seconds) && !is_float($body->delay_seconds)) {
                throw HttpError::badRequest('delay_seconds must be a number of seconds');
            }
            $options['delay_seconds'] = $body->delay_seconds;
        }
        if (isset($body->run_at)) {
            $options['run_at'] = self::text($body->run_at, 'run_at');
        }
        if (isset($body->max_attempts)) {
            $options['max_attempts'] = self::integer($body->max_attempts, 'max_attempts', 1, 1000000);
        }
        if (isset($body->dedupe_key)) {
            $options['dedupe_key'] = self::text($body->dedupe_key, 'dedupe_key');
        }
        if (isset($body->dedupe_scope)) {
            if (!in_array($body->dedupe_scope, ['always', 'active'], true)) {
                throw HttpError::badRequest('dedupe_scope must be "always" or "active"');
            }
            $options['dedupe_scope'] = $body->dedupe_scope;
        }
        if (isset($body->unique_for_seconds)) {
            $options['unique_for_seconds'] = self::integer($body->unique_for_seconds, 'unique_for_seconds', 1, 31536000);
        }
        return $options;
    }
    /** @param array<string, mixed> $type */
    private static function type(array $type): array
    {
        return [
            'id' => $type['id'],
            'name' => $type['name'],
            'version' => $type['version'],
            'param_schema' => JsonShape::schema($type['param_schema']),
            'is_active' => (bool) $type['is_active'],
            'created_at' => self::time($type['created_at']),
            'updated_at' => self::time($type['updated_at']),
        ] + Flow::state($type);
    }

    /** An empty PHP array came from `{}`: send it back as an object. */
    private static function object(mixed $value): mixed
    {
        return $value === [] ? new \stdClass() : $value;
    }

    /** "2024-01-01T10:00:00.000000Z" -> "2024-01-01 10:00:00" (UTC), as the original showed times. */
    private static function time(?string $iso): ?string
    {
        return $iso === null ? null : str_replace('T', ' ', substr($iso, 0, 19));
    }
}
