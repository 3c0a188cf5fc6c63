<?php
// A long-running worker: claims tasks, heartbeats while it works, completes them or fails them
// for a retry, and stops cleanly on SIGTERM / SIGINT (the task in hand is finished or released).
//
//   php examples/worker.php [--once]      (--once: exit when the queue is empty)

declare(strict_types=1);

require __DIR__ . '/../src/autoload.php';
if (is_file(__DIR__ . '/../config.php')) {
    require __DIR__ . '/../config.php';
}

use TaskManager\Exception\ConnectionException;
use TaskManager\Exception\LeaseLostException;
use TaskManager\TaskManager;

$once = in_array('--once', $argv, true);
$workerId = gethostname() . ':' . getmypid();
$stop = false;
if (function_exists('pcntl_async_signals')) {
    pcntl_async_signals(true);
    $onSignal = function (int $signal) use (&$stop): void {
        fprintf(STDERR, "worker: signal %d, stopping after the current task\n", $signal);
        $stop = true;
    };
    pcntl_signal(SIGTERM, $onSignal);
    pcntl_signal(SIGINT, $onSignal);
}

/** Renders one page; stands in for real work that takes a while. */
function renderPage(array $params, int $page): void
{
    usleep(100_000);
    if (($params['fail'] ?? false) === true) {
        throw new RuntimeException("page $page of {$params['report']} could not be rendered");
    }
}

$tm = TaskManager::getInstance();
$idle = 0.2;
$done = 0;
while (!$stop) {
    try {
        $tasks = $tm->claim($workerId, ['types' => ['report.render'], 'limit' => 1, 'lease_seconds' => 30]);
    } catch (ConnectionException $e) {
        fprintf(STDERR, "worker: database unavailable (%s); retrying\n", $e->getMessage());
        sleep(2);
        continue;
    }
    if ($tasks === []) {
        if ($once) {
            break;
        }
        usleep((int) ($idle * 1e6));
        $idle = min($idle * 2, 5.0); // back off while the queue is empty
        continue;
    }
    $idle = 0.2;
    $task = $tasks[0];
    try {
        for ($page = 1; $page <= $task['params']['pages']; $page++) {
            if ($stop) {
                // Shutting down mid-task: give it back without counting the attempt.
                $tm->release($task['id'], $task['lease_token']);
                fprintf(STDERR, "worker: released task %d\n", $task['id']);
                break 2;
            }
            renderPage($task['params'], $page);
            $progress = intdiv(100 * $page, $task['params']['pages']);
            $tm->heartbeat($task['id'], $task['lease_token'], ['progress' => $progress, 'lease_seconds' => 30]);
        }
        $tm->complete($task['id'], $task['lease_token'], ['file' => "/reports/{$task['params']['report']}.pdf"]);
        $done++;
        printf("worker: task %d done (%s)\n", $task['id'], $task['params']['report']);
    } catch (LeaseLostException $e) {
        fprintf(STDERR, "worker: lost task %d to another worker; dropping it\n", $task['id']);
    } catch (Throwable $e) {
        $result = $tm->fail($task['id'], $task['lease_token'], $e->getMessage());
        fprintf(STDERR, "worker: task %d failed (%s); now %s\n", $task['id'], $e->getMessage(), $result['status']);
    }
}
printf("worker: %d task(s) done\n", $done);
