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
 * API key when there is none; with neither configured it stays closed. A login opens a
 * session (see Session) for 8 hours at most. Only when there is no dashboard password do its
 * calls also accept X-API-Key (the key is then the dashboard's secret anyway); a separate
 * password would mean nothing if the API key still reached every action. The calls that
 * change tasks take JSON bodies only, which a cross-site form cannot send.
 *
 * Failed sign-ins are counted per client address; past the limit the answer is 429 at once,
 * without comparing, so guessing is slow and no worker is held while it waits.
 */
final class Dashboard
{
    private const LOGIN_FAILURES = 10;
    private const LOGIN_WINDOW = 900;
    private const ASSETS = [
        'app.js' => 'text/javascript; charset=utf-8',
        'style.css' => 'text/css; charset=utf-8',
    ];

    /** @param \Closure(): TaskManager $queue */
    public function __construct(
        private readonly Settings $settings,
        private readonly \Closure $queue,
        private readonly Peer $peer = new Peer('', false),
    ) {
    }

    /** @param list<string> $path the segments after /dashboard */
    public function handle(Request $request, array $path): Response
    {
        $secret = $this->settings->dashboardSecret();
        if ($secret === null) {
            return self::page($request, 'closed.html', 503);
        }
        $first = $path[0] ?? '';
        if (isset(self::ASSETS[$first]) && count($path) === 1) {
            return Response::text(self::asset($first), self::ASSETS[$first]);
        }
        // Sessions and answers about the queue are the operator's alone: no cache keeps them.
        $response = $this->answer($request, $path, $first, new Session($this->state(), $secret), $secret);
        $response->headers['Cache-Control'] = 'no-store';
        return $response;
    }

    /** @param list<string> $path */
    private function answer(Request $request, array $path, string $first, Session $session, string $secret): Response
    {
        if ($first === 'login' && $request->method === 'POST') {
            return $this->login($request, $session, $secret);
        }
        if ($first === 'logout' && $request->method === 'POST') {
            return $this->logout($request, $session);
        }
        $signedIn = $this->signedIn($request, $session);
        if ($first === 'api') {
            if (!$signedIn) {
                throw new HttpError(401, 'Sign in to the dashboard first');
            }
            return $this->api($request, array_slice($path, 1));
        }
        if ($path !== []) {
            throw new HttpError(404, 'Endpoint not found');
        }
        if (str_ends_with($request->path, '/')) {
            // `/dashboard/`: the page's relative links would point one level too deep.
            $query = http_build_query($request->query);
            return new Response(308, null, ['Location' => rtrim($request->path, '/') . ($query === '' ? '' : "?$query")]);
        }
        return self::page($request, $signedIn ? 'index.html' : 'login.html', 200, $signedIn ? [] : [
            '{{error}}' => isset($request->query['failed']) ? '<p class="error" id="login-error">Wrong password.</p>' : '',
        ]);
    }

    private function login(Request $request, Session $session, string $secret): Response
    {
        $limiter = new Limiter(new SlotFile($this->state()->file('login-failures.bin'), 512), self::LOGIN_FAILURES, self::LOGIN_WINDOW);
        $log = new SecurityLog($this->state());
        // Every attempt is counted before the comparison, so parallel guesses cannot slip
        // past the limit; a right password clears the count.
        $attempt = $limiter->hit($this->peer->ip);
        if (!$attempt['allowed']) {
            $log->write('dashboard_login_limited', $this->peer, $request);
            $minutes = (int) ceil($attempt['retry_after'] / 60);
            $response = self::page($request, 'login.html', 429, ['{{error}}' => '<p class="error" id="login-error">'
                . "Too many failed sign-ins from your address; try again in $minutes minutes.</p>"]);
            $response->headers['Retry-After'] = (string) $attempt['retry_after'];
            return $response;
        }
        $given = $request->form()['password'] ?? '';
        if (!is_string($given) || !hash_equals($secret, $given)) {
            $log->write('dashboard_login_failed', $this->peer, $request, ['attempts_left' => $attempt['remaining']]);
            return self::redirect($request, '?failed=1');
        }
        $limiter->clear($this->peer->ip);
        $response = self::redirect($request);
        $response->headers['Set-Cookie'] = $session->open($this->peer);
        return $response;
    }

    /**
     * Signing out ends the session server-side. Only the dashboard's own page may do it: a
     * request another site makes the browser send is refused (it would sign the operator out).
     */
    private function logout(Request $request, Session $session): Response
    {
        $site = $request->header('Sec-Fetch-Site');
        $origin = $request->header('Origin');
        $own = ($this->peer->https ? 'https://' : 'http://') . $request->header('Host');
        $sameOrigin = $site !== null ? $site === 'same-origin' : $origin !== null && $origin === $own;
        if (!$sameOrigin) {
            throw new HttpError(403, 'Sign out from the dashboard page');
        }
        $response = self::redirect($request);
        $response->headers['Set-Cookie'] = $session->close($request, $this->peer);
        return $response;
    }

    private function signedIn(Request $request, Session $session): bool
    {
        $key = $request->header('X-API-Key');
        $password = $this->settings->dashboardPassword;
        if ($key !== null && ($password === null || $password === '')
            && $this->settings->apiKey !== null && $this->settings->apiKey !== ''
            && hash_equals($this->settings->apiKey, $key)) {
            return true;
        }
        return $session->valid($request, $this->peer);
    }

    private function state(): StateDir
    {
        return $this->settings->state ?? throw new \RuntimeException('the dashboard needs a state directory');
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
                $get && $path === ['schedules'] => Response::success('Schedules', $tm->scheduleList()),
                $get && $path === ['types'] => Response::success('Types', array_map(
                    static fn (array $type): array => ['param_schema' => JsonShape::schema($type['param_schema'])] + $type,
                    $tm->listTypes(),
                )),
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
                // Flow control: the same checks as the API's routes (Flow), a 400 naming the field.
                !$get && count($path) === 3 && $path[0] === 'types' && $path[1] === 'pause'
                    => Response::success('Type paused', $tm->pauseType($path[2], Flow::pauseOptions($body)['until'] ?? null)),
                !$get && count($path) === 3 && $path[0] === 'types' && $path[1] === 'resume'
                    => Response::success('Type resumed', $tm->resumeType($path[2])),
                !$get && count($path) === 3 && $path[0] === 'types' && $path[1] === 'limits'
                    => Response::success('Type limits saved', $tm->setTypeLimits($path[2], Flow::limits($body))),
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
     * One page of the task list; `params` and `error` search one field each (the library's
     * `params_text` and `error_text` filters), `text` either.
     *
     * @param array<string, mixed> $query
     * @return list<array<string, mixed>>
     */
    private function tasks(TaskManager $tm, array $query): array
    {
        $filter = $this->filter($query, 50);
        foreach (['params' => 'params_text', 'error' => 'error_text'] as $field => $key) {
            if (isset($query[$field]) && is_string($query[$field]) && $query[$field] !== '') {
                $filter[$key] = $query[$field];
            }
        }
        return $tm->listTasks($filter);
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
        foreach (['before_id', 'limit'] as $name) {
            $value = $fields[$name] ?? null;
            if ($value !== null && $value !== '' && !self::count($value)) {
                throw HttpError::badRequest("$name must be a positive integer");
            }
        }
        if (isset($fields['before_id']) && $fields['before_id'] !== '') {
            $filter['before_id'] = (int) $fields['before_id'];
        }
        if (isset($fields['limit']) && $fields['limit'] !== '') {
            $filter['limit'] = min($limit, max(1, (int) $fields['limit']));
        }
        return $filter;
    }

    /** A whole number that fits in 64 bits (given as a JSON number or as digits). */
    private static function count(mixed $value): bool
    {
        return is_int($value) ? $value >= 0 : is_string($value) && ctype_digit($value) && strlen($value) <= 18;
    }

    /** Back to the dashboard page, wherever it is mounted (`/dashboard`, `/api/dashboard`, ...). */
    private static function redirect(Request $request, string $query = ''): Response
    {
        $at = strpos($request->path, '/dashboard');
        $base = $at === false ? '/dashboard' : substr($request->path, 0, $at + strlen('/dashboard'));
        return new Response(303, null, ['Location' => $base . $query]);
    }

    /**
     * A page. The sign-in and closed pages get a `<base>` at the directory the dashboard is
     * mounted in, so their relative links (`dashboard/style.css`, `dashboard/login`) hold from
     * any path they are answered at (`/dashboard/login` after a refused sign-in). The app page
     * gets none: its `#/tasks` links must stay on the page.
     *
     * @param array<string, string> $replace
     */
    private static function page(Request $request, string $file, int $status, array $replace = []): Response
    {
        if ($file !== 'index.html') {
            $at = strpos($request->path, '/dashboard');
            $base = htmlspecialchars(($at === false ? '' : substr($request->path, 0, $at)) . '/', ENT_QUOTES);
            $replace += ['<head>' => "<head>\n<base href=\"$base\">"];
        }
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
