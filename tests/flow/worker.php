<?php
// Flow control race worker (PHP binding): claims tasks of one type with a short lease, holds
// each for HOLD_MS (the work), completes it, and goes on until the stop file exists and
// nothing is left to claim. The test may kill it with SIGKILL at any moment.
//
//   php -d ffi.enable=1 tests/flow/worker.php CONFIG_JSON STOP_FILE WORKER_ID TYPE HOLD_MS
//
// Prints a JSON line as each task ends for it, {"completed": id} (this call finished the
// task) or {"lease_lost": id}, and a last line {"worker", "steps", "lease_lost"} when it stops.

declare(strict_types=1);

require __DIR__ . '/../../php/src/autoload.php';

use TaskManager\Exception\LeaseLostException;
use TaskManager\TaskManager;

[, $config, $stopFile, $workerId, $type, $holdMs] = $argv;
TaskManager::configure(json_decode($config, true, 512, JSON_THROW_ON_ERROR));
$tm = TaskManager::getInstance();

$done = 0;
$lost = 0;
while (true) {
    $tasks = $tm->claim($workerId, ['types' => [$type], 'lease_seconds' => 2]);
    if ($tasks === []) {
        if (is_file($stopFile)) {
            break;
        }
        usleep(10_000);
        continue;
    }
    foreach ($tasks as $task) {
        usleep((int) $holdMs * 1000);
        try {
            $finished = $tm->complete($task['id'], $task['lease_token'], ['by' => $workerId]);
            if (!$finished['repeated']) {
                echo json_encode(['completed' => $task['id']]), "\n";
                $done++;
            }
        } catch (LeaseLostException) {
            // the lease ran out meanwhile: the task runs again elsewhere
            echo json_encode(['lease_lost' => $task['id']]), "\n";
            $lost++;
        }
    }
}
echo json_encode(['worker' => $workerId, 'steps' => $done, 'lease_lost' => $lost]), "\n";
