<?php
// TaskManager through its PHP binding, beside a plain-SQL floor and beside Laravel 8's database
// queue, on the same server in one run: enqueue, drains (claim + complete, with history and
// without, completeAndClaim, claim 100 + completeBatch), batch enqueue, and the server's CPU per
// drained task. Prints a markdown table: tasks/s, median (min-max) of 3 runs.
//
//     php -d ffi.enable=1 benches/php/compare.php
//
// Environment: TASKMANAGER_TEST_HOST (127.0.0.1), TASKMANAGER_TEST_PORT (3306),
// TASKMANAGER_TEST_USER (taskmanager_test), TASKMANAGER_TEST_PASS (empty), TM_BENCH_TASKS (tasks
// per run, 2000), TASKMANAGER_LIB (the library, as the binding looks it up). The script creates
// the database tm_phpbench_<pid> and drops it at the end, also when it fails. It exits non-zero
// when a process fails or a run's outcome is wrong (a task left behind or done twice).

declare(strict_types=1);

namespace TaskManager\Bench;

use TaskManager\TaskManager;

require_once __DIR__ . '/../../php/src/autoload.php';
foreach (['server', 'processes', 'ours', 'floor', 'laravel', 'report', 'bench'] as $file) {
    require_once __DIR__ . "/lib/$file.php";
}

const WORKER_COUNTS = [1, 4, 16];
const PRODUCER_COUNTS = [1, 4];
/** The worker count whose runs give the CPU per task rows. */
const CPU_WORKERS = 4;

/** "abc1234", with a mark when the working tree differs from it; "unknown" outside git. */
function gitCommit(string $root): string
{
    $git = 'git -C ' . escapeshellarg($root);
    $commit = trim((string) @shell_exec("$git rev-parse --short HEAD 2>/dev/null"));
    if ($commit === '') {
        return 'unknown';
    }
    $changes = trim((string) @shell_exec("$git status --porcelain --untracked-files=no 2>/dev/null"));
    return $changes === '' ? $commit : "$commit (with uncommitted changes)";
}

/** The table, from the measurements: one row per figure, CPU rows last. */
function table(array $enqueue, array $drains, array $batch, ?ServerCpu $cpu): Table
{
    $table = new Table();
    foreach ($enqueue as $producers => $f) {
        $table->add("enqueue, $producers producer" . ($producers > 1 ? 's' : ''), $f['floor']['rate'], $f['ours']['rate'], $f['laravel']['rate']);
    }
    foreach ($drains as $workers => $f) {
        $w = "$workers worker" . ($workers > 1 ? 's' : '');
        [$floor, $laravel] = [$f['floor']['rate'], $f['laravel']['rate']];
        $table->add("drain, claim + complete, $w", $floor, $f['ours']['rate'], $laravel);
        $table->add("drain, claim + complete, history off, $w", $floor, $f['ours_no_history']['rate'], $laravel);
        $table->add("drain, complete_and_claim, $w", $floor, $f['ours_looped']['rate'], $laravel);
    }
    foreach ($drains as $workers => $f) {
        $table->add("drain, claim 100 + completeBatch, $workers worker" . ($workers > 1 ? 's' : ''), null, $f['ours_batched']['rate']);
    }
    $table->add('enqueueBatch of 500 vs one multi-row INSERT of 500, 1 producer', $batch['floor']['rate'], $batch['ours']['rate'], $batch['laravel']['rate']);
    $f = $drains[CPU_WORKERS];
    foreach ([
        'ours' => 'claim + complete',
        'ours_no_history' => 'claim + complete, history off',
        'ours_looped' => 'complete_and_claim',
        'ours_batched' => 'claim 100 + completeBatch',
    ] as $key => $what) {
        $name = 'server CPU us per task, drain, ' . CPU_WORKERS . " workers, $what";
        if ($cpu === null || $f[$key]['cpu'] === null) {
            $table->addText($name, ['n/a', 'n/a', '', 'n/a', '']);
        } else {
            $table->add($name, $f['floor']['cpu'], $f[$key]['cpu'], $f['laravel']['cpu']);
        }
    }
    return $table;
}

function main(): int
{
    foreach (['ffi', 'pdo_mysql', 'pcntl'] as $extension) {
        if (!extension_loaded($extension)) {
            fwrite(STDERR, "PHP's $extension extension is needed (run with php -d ffi.enable=1)\n");
            return 2;
        }
    }
    $tasks = (int) (getenv('TM_BENCH_TASKS') ?: 2000);
    if ($tasks < 16) {
        fwrite(STDERR, "TM_BENCH_TASKS must be at least 16 (one task per worker)\n");
        return 2;
    }
    $server = Server::fromEnvironment('tm_phpbench_' . getmypid());

    // The database goes at the end whatever happens; forked processes inherit this function
    // and must not run it.
    $owner = getmypid();
    $root = $server->pdo(null);
    $root->exec("CREATE DATABASE {$server->db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
    $root = null;
    register_shutdown_function(static function () use ($owner, $server): void {
        if (getmypid() === $owner) {
            Admin::close();
            $server->pdo(null)->exec("DROP DATABASE IF EXISTS {$server->db}");
        }
    });
    // Interrupted, it still drops the database: exit() runs the shutdown function.
    pcntl_async_signals(true);
    foreach ([SIGINT, SIGTERM] as $signal) {
        pcntl_signal($signal, static function (): void {
            exit(130);
        });
    }
    Admin::use($server);

    $cpu = ServerCpu::find($server);
    $bench = new Bench($server, $tasks, $cpu);
    $bench->setUp();
    printf(
        "TaskManager PHP benchmark: server %s, innodb_flush_log_at_trx_commit=%s, N=%d tasks per run, commit %s\n",
        Admin::value('SELECT VERSION()'),
        Admin::value('SELECT @@innodb_flush_log_at_trx_commit'),
        $tasks,
        gitCommit(dirname(__DIR__, 2))
    );
    printf(
        "library %s through PHP %s (FFI), forked processes; history, validation and dedupe on unless said; "
        . "Laravel's payload %d bytes; server CPU %s\n\n",
        TaskManager::version(),
        PHP_VERSION,
        strlen(Laravel::payload(new LaravelJob(1))),
        $cpu === null ? 'not readable (n/a)' : 'read from /proc'
    );

    $enqueue = [];
    foreach (PRODUCER_COUNTS as $producers) {
        $enqueue[$producers] = $bench->enqueue($producers);
    }
    $drains = [];
    foreach (WORKER_COUNTS as $workers) {
        $drains[$workers] = $bench->drain($workers);
    }
    $batch = $bench->enqueueBatch();
    $bench->emptyAll();

    echo "tasks/s, median (min-max) of ", Bench::RUNS, " runs; server CPU rows in microseconds per task (lower is better)\n\n";
    echo table($enqueue, $drains, $batch, $cpu)->render();
    echo "\nThe floor and Laravel drain one way only: the drain rows of one worker count share their runs, and the CPU rows\n"
        . "share the floor's and Laravel's claim + complete figures. Laravel's batch enqueue is Queue::bulk (one multi-row INSERT).\n";
    [$busy, $runs] = $bench->busyRuns();
    if ($busy > 0) {
        echo "\nWarning: the server did not go idle before $busy of $runs runs: another load ran on it, and the figures "
            . "(the CPU rows most) include it.\n";
    }
    return 0;
}

try {
    exit(main());
} catch (\Throwable $e) {
    fwrite(STDERR, sprintf("benchmark failed: %s: %s\n", $e::class, $e->getMessage()));
    exit(1);
}
