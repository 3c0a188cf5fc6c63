<?php
// Drains the queue through the PHP binding (FFI) with N worker processes, each claiming one
// task and completing it until the queue is empty; prints the seconds from the first worker's
// first claim to the last worker's end (process start and library load are left out, as the
// Rust API's figure leaves out opening its clients). Run by
// `cargo bench --bench queue -- bindings`, which fills the queue and compares the figure with
// the Rust API's in the same run.
//
//     php -d ffi.enable=1 benches/bindings/drain.php CONFIG_JSON WORKERS

declare(strict_types=1);

require_once __DIR__ . '/../../php/src/autoload.php';

use TaskManager\TaskManager;

[$config, $workers] = [json_decode($argv[1], true, 512, JSON_THROW_ON_ERROR), (int) $argv[2]];
$times = sys_get_temp_dir() . '/tm-drain-' . getmypid();
@mkdir($times);
$children = [];
for ($w = 0; $w < $workers; $w++) {
    $pid = pcntl_fork();
    if ($pid === 0) {
        TaskManager::configure($config);
        $queue = TaskManager::getInstance();
        $started = microtime(true);
        $done = 0;
        while ($tasks = $queue->claim("php-$w")) {
            $queue->complete($tasks[0]['id'], $tasks[0]['lease_token'], null);
            $done++;
        }
        file_put_contents("$times/$w", json_encode([$started, microtime(true)]));
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
$spans = array_map(
    fn (string $file) => json_decode(file_get_contents($file), true, 2, JSON_THROW_ON_ERROR),
    glob("$times/*")
);
array_map('unlink', glob("$times/*"));
rmdir($times);
$seconds = max(array_column($spans, 1)) - min(array_column($spans, 0));
echo json_encode(['seconds' => $seconds]), "\n";
