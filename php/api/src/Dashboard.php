<?php

declare(strict_types=1);

namespace TaskManager\Api;

use TaskManager\Exception\TaskManagerException;
use TaskManager\TaskManager;

/**
 * The web dashboard at /dashboard: a page and its assets (no build step, nothing from the
 * network), a login, and the JSON calls the page makes under /dashboard/api/.
 *
 * Closed by default: it opens with the dashboard's own password (DASHBOARD_PASSWORD), or the
 * API key when there is none; with neither configured it stays closed. A login sets a signed,
 * HttpOnly, SameSite=Strict session cookie for 8 hours. Its calls also accept X-API-Key. The
 * calls that change tasks take JSON bodies only, which a cross-site form cannot send.
 */
final class Dashboard
{
    private const COOKIE = 'tm_dashboard';
    private const SESSION_SECONDS = 8 * 3600;
    private const ASSETS = [
        'app.js' => 'text/javascript; charset=utf-8',
        'style.css' => 'text/css; charset=utf-8',
    ];

    /** @param \Closure(): TaskManager $queue */
    public function __construct(private readonly Settings $settings, private readonly \Closure $queue)
    {
    }

    /** @param list<string> $path the segments after /dashboard */
    public function handle(Request $request, array $path): Response
    {
        $secret = $this->settings->dashboardSecret();
        if ($secret === null) {
            return self::page('closed.html', 503);
        }
        $first = $path[0] ?? '';
        if (isset(self::ASSETS[$first]) && count($path) === 1) {
            return Response::text(self::asset($first), self::ASSETS[$first]);
        }
        if ($first === 'login' && $request->method === 'POST') {
            return $this->login($request, $secret);
        }
        if ($first === 'logout' && $request->method === 'POST') {
            $response = self::redirect($request);
            $response->headers['Set-Cookie'] = self::COOKIE . '=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict';
            return $response;
        }
        $signedIn = $this->signedIn($request, $secret);
        if ($first === 'api') {
            if (!$signedIn) {
                throw new HttpError(401, 'Sign in to the dashboard first');
            }
            return $this->api($request, array_slice($path, 1));
        }
        if ($path !== []) {
            throw new HttpError(404, 'Endpoint not found');
        }
        return self::page($signedIn ? 'index.html' : 'login.html', 200, $signedIn ? [] : [
            '{{error}}' => isset($request->query['failed']) ? '<p class="error" id="login-error">Wrong password.</p>' : '',
        ]);
    }

    private function login(Request $request, string $secret): Response
    {
        $given = (string) ($request->form()['password'] ?? '');
        if (!hash_equals($secret, $given)) {
            // A wrong password costs a moment, so guessing is slow.
            usleep(300_000);
            return self::redirect($request, '?failed=1');
        }
        $expires = time() + self::SESSION_SECONDS;
        $response = self::redirect($request);
        $response->headers['Set-Cookie'] = sprintf(
            '%s=%s; Max-Age=%d; Path=/; HttpOnly; SameSite=Strict',
            self::COOKIE,
            $expires . '.' . self::sign((string) $expires, $secret),
            self::SESSION_SECONDS,
        );
        return $response;
    }

    private function signedIn(Request $request, string $secret): bool
    {
        $key = $request->header('X-API-Key');
        if ($key !== null && $this->settings->apiKey !== null && $this->settings->apiKey !== ''
            && hash_equals($this->settings->apiKey, $key)) {
            return true;
        }
        $cookie = $request->cookies[self::COOKIE] ?? '';
        [$expires, $signature] = array_pad(explode('.', $cookie, 2), 2, '');
        return ctype_digit($expires) && (int) $expires > time()
            && hash_equals(self::sign($expires, $secret), $signature);
    }

    /** The session's signature: changes when the secret does, which ends every session. */
    private static function sign(string $expires, string $secret): string
    {
        return hash_hmac('sha256', $expires, 'taskmanager-dashboard|' . $secret);
    }

    /** @param list<string> $path the segments after /dashboard/api */
    private function api(Request $request, array $path): Response
    {
        $tm = ($this->queue)();
        $get = $request->method === 'GET';
        $body = $get ? new \stdClass() : $this->jsonBody($request);
        $id = static fn (string $segment): int => ctype_digit($segment) && strlen($segment) < 19
            ? (int) $segment
            : throw HttpError::badRequest('Task id must be a positive integer');
        try {
            return match (true) {
                $get && $path === ['stats'] => Response::success('Stats', $tm->stats()),
                $get && $path === ['types'] => Response::success('Types', $tm->listTypes()),
                $get && $path === ['tasks'] => Response::success('Tasks', $this->tasks($tm, $request->query)),
                $get && count($path) === 2 && $path[0] === 'tasks' => Response::success('Task', [
                    'task' => $tm->getTask($id($path[1])),
                    'history' => $tm->history($id($path[1])),
                ]),
                !$get && count($path) === 3 && $path[0] === 'tasks' && $path[2] === 'retry'
                    => Response::success('Retried', $tm->retry($id($path[1]))),
                !$get && count($path) === 3 && $path[0] === 'tasks' && $path[2] === 'cancel'
                    => Response::success('Cancelled', $tm->cancel($id($path[1]), self::reason($body))),
                !$get && $path === ['bulk'] => $this->bulk($tm, $body),
                !$get && count($path) === 3 && $path[0] === 'types' && in_array($path[1], ['activate', 'deactivate'], true)
                    => Response::success('Type updated', $tm->setTypeActive($path[2], $path[1] === 'activate')),
                default => throw new HttpError(404, 'Endpoint not found'),
            };
        } catch (TaskManagerException $e) {
            throw Failure::fromLibrary($e);
        }
    }

    private function jsonBody(Request $request): \stdClass
    {
        if (!str_starts_with((string) $request->header('Content-Type'), 'application/json')) {
            throw HttpError::badRequest('Send actions as JSON (Content-Type: application/json)');
        }
        return $request->json();
    }

    private static function reason(\stdClass $body): ?string
    {
        return isset($body->reason) && is_string($body->reason) && $body->reason !== '' ? $body->reason : null;
    }

    /**
     * Retry or cancel every task a filter selects (at most 1000 per call): one library call,
     * which changes each task as the single action does and reports the ones it refused.
     * `dry_run: true` reports and changes nothing.
     */
    private function bulk(TaskManager $tm, \stdClass $body): Response
    {
        $action = $body->action ?? '';
        if (!in_array($action, ['retry', 'cancel'], true)) {
            throw HttpError::badRequest('action must be retry or cancel');
        }
        $filter = $this->filter((array) ($body->filter ?? []), 1000);
        $options = ['limit' => $filter['limit'], 'dry_run' => ($body->dry_run ?? false) === true];
        unset($filter['limit']);
        $reason = self::reason($body);
        if ($action === 'cancel' && $reason !== null) {
            $options['reason'] = $reason;
        }
        return Response::success("Bulk $action", $action === 'cancel'
            ? $tm->cancelWhere($filter, $options)
            : $tm->retryWhere($filter, $options));
    }

    /**
     * One page of the task list. `params` and `error` narrow the library's `text` filter, which
     * matches either field, to one of them: the library selects by the text, this keeps the
     * tasks whose field holds it (case-insensitive, as the library compares), reading on until
     * the page is full or the list ends.
     *
     * @param array<string, mixed> $query
     * @return list<array<string, mixed>>
     */
    private function tasks(TaskManager $tm, array $query): array
    {
        $filter = $this->filter($query, 50);
        $fields = array_filter(
            ['params' => $query['params'] ?? null, 'error' => $query['error'] ?? null],
            static fn (mixed $text): bool => is_string($text) && $text !== '',
        );
        if ($fields === []) {
            return $tm->listTasks($filter);
        }
        $filter['text'] ??= reset($fields);
        $size = $filter['limit'];
        $filter['limit'] = 1000;
        $page = [];
        do {
            $batch = $tm->listTasks($filter);
            foreach ($batch as $task) {
                $in = [
                    'params' => json_encode($task['params'], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES),
                    'error' => (string) ($task['error_message'] ?? ''),
                ];
                foreach ($fields as $field => $text) {
                    if (mb_stripos((string) $in[$field], $text) === false) {
                        continue 2;
                    }
                }
                $page[] = $task;
                if (count($page) === $size) {
                    return $page;
                }
            }
            $filter['before_id'] = $batch === [] ? 0 : $batch[count($batch) - 1]['id'];
        } while (count($batch) === $filter['limit']);
        return $page;
    }

    /**
     * The library's list filter from query or body fields: status, type, worker, text,
     * before_id, limit.
     *
     * @param array<string, mixed> $fields
     * @return array<string, mixed>
     */
    private function filter(array $fields, int $limit): array
    {
        $filter = ['limit' => $limit];
        foreach (['status' => 'status', 'type' => 'type', 'worker' => 'worker_id', 'text' => 'text'] as $field => $key) {
            if (isset($fields[$field]) && is_string($fields[$field]) && $fields[$field] !== '') {
                $filter[$key] = $fields[$field];
            }
        }
        if (isset($fields['before_id']) && ctype_digit((string) $fields['before_id'])) {
            $filter['before_id'] = (int) $fields['before_id'];
        }
        if (isset($fields['limit']) && ctype_digit((string) $fields['limit'])) {
            $filter['limit'] = min($limit, max(1, (int) $fields['limit']));
        }
        return $filter;
    }

    /** Back to the dashboard page, wherever it is mounted (`/dashboard`, `/api/dashboard`, ...). */
    private static function redirect(Request $request, string $query = ''): Response
    {
        $at = strpos($request->path, '/dashboard');
        $base = $at === false ? '/dashboard' : substr($request->path, 0, $at + strlen('/dashboard'));
        return new Response(303, null, ['Location' => $base . $query]);
    }

    /** @param array<string, string> $replace */
    private static function page(string $file, int $status, array $replace = []): Response
    {
        $html = strtr(self::asset($file), $replace);
        $response = Response::text($html, 'text/html; charset=utf-8');
        $response->headers['Content-Security-Policy'] = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";
        $response->headers['X-Frame-Options'] = 'DENY';
        return $status === 200 ? $response : new Response($status, null, $response->headers, $html);
    }

    private static function asset(string $file): string
    {
        return (string) file_get_contents(dirname(__DIR__) . '/dashboard/' . $file);
    }
}
