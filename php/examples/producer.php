<?php
// Producer: registers a task type and enqueues a few tasks.
//
//   php examples/producer.php [count]
//
// Configured like the original system: by config.php constants when present, else by
// TASKMANAGER_* environment variables (e.g. TASKMANAGER_DATABASE_URL).

declare(strict_types=1);

require __DIR__ . '/../src/autoload.php';
if (is_file(__DIR__ . '/../config.php')) {
    require __DIR__ . '/../config.php';
}

use TaskManager\Exception\TaskManagerException;
use TaskManager\TaskManager;

$count = max(1, (int) ($argv[1] ?? 5));
try {
    $tm = TaskManager::getInstance();
    $tm->migrate();
    $tm->registerType('report.render', [
        'type' => 'object',
        'required' => ['report', 'pages'],
        'properties' => ['report' => ['type' => 'string'], 'pages' => ['type' => 'integer', 'minimum' => 1]],
    ]);
    $run = date('YmdHis') . '-' . getmypid(); // identical params would be deduplicated
    for ($i = 1; $i <= $count; $i++) {
        $task = $tm->enqueue('report.render', ['report' => "monthly-$i", 'pages' => 3, 'run' => $run], ['priority' => $i % 3]);
        printf("enqueued task %d (%s)%s\n", $task['id'], "monthly-$i", $task['deduplicated'] ? ' [already queued]' : '');
    }
} catch (TaskManagerException $e) {
    fprintf(STDERR, "producer: %s (code %d)\n", $e->getMessage(), $e->getTmCode());
    exit(1);
}
