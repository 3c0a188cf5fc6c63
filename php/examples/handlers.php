<?php
// A bootstrap for bin/taskmanager-worker: loads the configuration and returns a handler per
// task type. It serves the tasks of examples/producer.php (report.render) and of the
// repository's demo (demo.thumbnail):
//
//   php examples/producer.php 5 && php bin/taskmanager-worker --bootstrap=examples/handlers.php --stop-when-empty
//
// A real application requires its own autoloader and config.php here.

declare(strict_types=1);

use TaskManager\PermanentError;
use TaskManager\Task;

if (is_file(__DIR__ . '/../config.php')) {
    require __DIR__ . '/../config.php';
}

/** Renders a report page by page; a class with handle(Task) is one way to give a handler. */
final class RenderReport
{
    public function handle(Task $task): array
    {
        ['report' => $report, 'pages' => $pages] = $task->params;
        for ($page = 1; $page <= $pages; $page++) {
            usleep(100_000); // stands in for real work
            if (($task->params['fail'] ?? false) === true) {
                throw new RuntimeException("page $page of $report could not be rendered");
            }
            $task->progress(intdiv(100 * $page, $pages)); // also renews the lease
        }
        return ['file' => "/reports/$report.pdf"];
    }
}

return [
    'report.render' => RenderReport::class,
    // A closure is another: its return value becomes the task's result.
    'demo.thumbnail' => static function (Task $task): array {
        if (!is_string($task->params['image'] ?? null)) {
            throw new PermanentError('no image to shrink'); // retrying cannot help
        }
        return ['thumbnail' => "thumbs/{$task->params['image']}", 'width' => $task->params['width']];
    },
];
