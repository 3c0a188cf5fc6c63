<?php
// Drains the queue through the PHP binding (FFI) with N worker processes, each claiming one
// task and completing it until the queue is empty; prints tasks per second. Run by
// `cargo bench --bench queue -- bindings`, which fills the queue and compares the figure with
// the Rust API's in the same run.
//
//     php -d ffi.enable=1 benches/bindings/drain.php CONFIG_JSON WORKERS

declare(strict_types=1);

require_once __DIR__ . '/../../php/src/autoload.php';

use TaskManager\TaskManager;

[$config, $workers] = [json_decode($argv[1], true, 512, JSON_THROW_ON_ERROR), (int) $argv[2]];
$started = microtime(true);
$children = [];
for ($w = 0; $w < $workers; $w++) {
    $pid = pcntl_fork();
    if ($pid === 0) {
        TaskManager::configure($config);
        $queue = TaskManager::getInstance();
        $done = 0;
        while ($tasks = $queue->claim("php-$w")) {
            $queue->complete($tasks[0]['id'], $tasks[0]['lease_token'], null);
            $done++;
        }
        exit($done > 0 ? 0 : 3);
    }
    $children[] = $pid;
}
$failed = 0;
foreach ($children as $pid) {
    pcntl_waitpid($pid, $status);
    $failed += (pcntl_wifexited($status) && pcntl_wexitstatus($status) === 0) ? 0 : 1;
}
if ($failed > 0) {
    fwrite(STDERR, "$failed worker(s) failed or found nothing to do\n");
    exit(1);
}
echo json_encode(['seconds' => microtime(true) - $started]), "\n";
