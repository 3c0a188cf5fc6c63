<?php
// A producer/worker round trip through a copy of the PHP binding with the library installed in
// a loader directory: no TASKMANAGER_LIB, no build tree next to it.
// Usage: php -d ffi.enable=1 job.php BINDING_DIR HOST PORT USER DATABASE

declare(strict_types=1);

[, $binding, $host, $port, $user, $database] = $argv;
require $binding . '/src/autoload.php';

use TaskManager\TaskManager;

TaskManager::configure(['db_host' => $host, 'db_port' => (int) $port, 'db_user' => $user, 'db_pass' => '', 'db_name' => $database]);
$tm = TaskManager::getInstance();
$tm->migrate();
$tm->registerType('packaged.php', ['type' => 'object'], '1.0.0');
$id = $tm->enqueue('packaged.php', ['run' => bin2hex(random_bytes(8))])['id'];
$task = $tm->claim('packaged-php', ['types' => ['packaged.php']])[0];
if ($task['id'] !== $id) {
    fwrite(STDERR, "claimed {$task['id']}, expected $id\n");
    exit(1);
}
$tm->complete($id, $task['lease_token'], ['ok' => true]);
if ($tm->getTask($id)['status'] !== 'completed') {
    fwrite(STDERR, "task $id is not completed\n");
    exit(1);
}
echo "php job ok, library ", \TaskManager\Native::libraryPath(), "\n";
