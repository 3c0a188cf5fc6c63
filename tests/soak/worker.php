<?php
// Soak worker (PHP binding): runs tasks by the rule in their params until the stop file
// exists and the queue has nothing left for it. Exits non-zero on any error a worker should
// never see (a deadlock or lock wait surfacing, a crash).
//
//   php -d ffi.enable=1 tests/soak/worker.php CONFIG_JSON STOP_FILE WORKER_ID [--through-faults]
//
// With --through-faults (the server is being restarted) a lost connection or an unknown
// outcome is waited out and the same call repeated, as a real worker does.

declare(strict_types=1);

require __DIR__ . '/../../php/src/autoload.php';

use TaskManager\Exception\ConnectionException;
use TaskManager\Exception\LeaseLostException;
use TaskManager\TaskManager;

[, $config, $stopFile, $workerId] = $argv;
$throughFaults = in_array('--through-faults', $argv, true);
TaskManager::configure(json_decode($config, true, 512, JSON_THROW_ON_ERROR));
$tm = TaskManager::getInstance();

/** Runs $call, repeating it through connection faults when asked to. */
function persist(bool $throughFaults, callable $call): mixed
{
    while (true) {
        try {
            return $call();
        } catch (ConnectionException $e) {   // also OutcomeUnknownException
            if (!$throughFaults) {
                throw $e;
            }
            usleep(50_000);
        }
    }
}

$done = 0;
while (true) {
    $tasks = persist($throughFaults, fn () => $tm->claim($workerId, ['types' => ['soak'], 'limit' => 2]));
    if ($tasks === []) {
        if (is_file($stopFile)) {
            break;
        }
        usleep(20_000);
        continue;
    }
    foreach ($tasks as $task) {
        $p = $task['params'];
        try {
            persist($throughFaults, function () use ($tm, $task, $p, $workerId) {
                if ($p['dead']) {
                    $tm->fail($task['id'], $task['lease_token'], 'dead on arrival', ['retry' => false]);
                } elseif ($task['attempts'] <= $p['fail']) {
                    $tm->fail($task['id'], $task['lease_token'], 'not yet', ['retry' => true, 'retry_in_seconds' => 0]);
                } else {
                    $tm->complete($task['id'], $task['lease_token'], ['by' => $workerId]);
                }
            });
            $done++;
        } catch (LeaseLostException) {
            // the lease ran out meanwhile: another worker runs the task
        }
    }
}
echo json_encode(['worker' => $workerId, 'steps' => $done]), "\n";
