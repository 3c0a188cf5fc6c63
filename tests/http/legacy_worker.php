<?php
// A worker written the way the original system's PHP workers were, for the HTTP tests: it
// knows nothing of this project. It claims with worker_id (and an optional type_pattern),
// treats any HTTP status >= 400 as an exception carrying the body's `error`, recognises "no
// task" by the text "No available tasks", and completes by worker_id (no lease token).
//
//   php legacy_worker.php BASE_URL API_KEY WORKER_ID [TYPE_PATTERN]
// Prints one line per finished task: "done <id> <type>", then "idle" when nothing is left.

declare(strict_types=1);

[$script, $base, $key, $worker] = $argv;
$pattern = $argv[4] ?? null;

function api(string $method, string $path, ?array $body = null): array
{
    global $base, $key;
    $context = stream_context_create(['http' => [
        'method' => $method,
        'header' => "Content-Type: application/json\r\nX-API-Key: $key\r\n",
        'content' => $body === null ? '' : json_encode($body),
        'ignore_errors' => true,
        'timeout' => 30,
    ]]);
    $raw = file_get_contents($base . $path, false, $context);
    preg_match('{HTTP/\S+ (\d+)}', $http_response_header[0] ?? '', $m);
    $status = (int) ($m[1] ?? 0);
    $json = json_decode((string) $raw, true);
    if ($status >= 400) {
        throw new RuntimeException($json['error'] ?? "HTTP $status");
    }
    return $json['data'];
}

while (true) {
    $claim = ['worker_id' => $worker];
    if ($pattern !== null) {
        $claim['type_pattern'] = $pattern;
    }
    try {
        $task = api('POST', '/api/tasks/claim', $claim);
    } catch (RuntimeException $e) {
        if (str_contains($e->getMessage(), 'No available tasks')) {
            echo "idle\n";
            exit(0);
        }
        throw $e;
    }
    $params = $task['params'];
    if (($params['fail'] ?? false) === true) {
        api('POST', "/api/tasks/{$task['id']}/complete", ['worker_id' => $worker, 'success' => false, 'error' => 'asked to fail']);
        echo "failed {$task['id']} {$task['type']}\n";
        continue;
    }
    api('POST', "/api/tasks/{$task['id']}/progress", ['worker_id' => $worker, 'progress' => 50, 'message' => 'half way']);
    api('POST', "/api/tasks/{$task['id']}/complete", [
        'worker_id' => $worker,
        'success' => true,
        'result' => ['doubled' => ($params['n'] ?? 0) * 2],
    ]);
    echo "done {$task['id']} {$task['type']}\n";
}
