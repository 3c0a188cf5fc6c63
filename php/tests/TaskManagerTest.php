<?php

declare(strict_types=1);

namespace TaskManager\Tests;

use TaskManager\Code;
use TaskManager\Exception;
use TaskManager\Native;
use TaskManager\TaskManager;

final class TaskManagerTest extends TestCase
{
    public function testFullLifecycle(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType(['type' => 'object', 'required' => ['to'], 'properties' => ['to' => ['type' => 'string']]]);
        $queued = $tm->enqueue($type, ['to' => 'ada@example.com', 'subject' => 'Příliš žluťoučký kůň 🐎'], ['priority' => 5]);
        $this->assertSame('pending', $queued['status']);
        $this->assertFalse($queued['deduplicated']);

        $tasks = $tm->claim('php-worker', ['types' => [$type], 'limit' => 10]);
        $this->assertCount(1, $tasks);
        [$task] = $tasks;
        $this->assertSame($queued['id'], $task['id']);
        $this->assertSame(1, $task['attempts']);
        $this->assertSame('Příliš žluťoučký kůň 🐎', $task['params']['subject']);

        $beat = $tm->heartbeat($task['id'], $task['lease_token'], ['progress' => 60]);
        $this->assertSame(60, $beat['progress']);
        $done = $tm->complete($task['id'], $task['lease_token'], ['sent' => true]);
        $this->assertSame('completed', $done['status']);
        $this->assertTrue($tm->complete($task['id'], $task['lease_token'], ['sent' => true])['repeated']);

        $stored = $tm->getTask($task['id']);
        $this->assertSame(['sent' => true], $stored['result']);
        $this->assertSame('php-worker', $stored['claimed_by']);
        $this->assertSame(['created', 'claimed', 'progress', 'completed'], array_column($tm->history($task['id']), 'status_change'));
        $this->assertSame(1, $tm->stats()['types'][$type]['completed']);
        $this->assertSame([], $tm->claim('php-worker', ['types' => [$type]]));
    }

    public function testRetryThenDeadAndRelease(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['n' => 1], ['max_attempts' => 2])['id'];
        $task = $tm->claim('w', ['types' => [$type]])[0];
        $failed = $tm->fail($id, $task['lease_token'], 'temporary', ['retry_in_seconds' => 0]);
        $this->assertSame('pending', $failed['status']);
        $task = $tm->claim('w', ['types' => [$type]])[0];
        $this->assertSame(2, $task['attempts']);
        $this->assertSame('failed', $tm->fail($id, $task['lease_token'], 'for good')['status']);
        $this->assertSame('pending', $tm->retry($id)['status']);
        $task = $tm->claim('w', ['types' => [$type]])[0];
        $this->assertSame('pending', $tm->release($id, $task['lease_token'])['status']);
        $this->assertSame(1, $tm->claim('w', ['types' => [$type]])[0]['attempts']);
    }

    public function testCancelAndRetryWhereWithADryRun(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $ids = array_column($tm->enqueueBatch(array_map(static fn (int $n): array => ['type' => $type, 'params' => ['n' => $n]], range(1, 3))), 'id');
        $dry = $tm->cancelWhere(['type' => $type], ['dry_run' => true]);
        $this->assertTrue($dry['dry_run']);
        $this->assertSame(array_reverse($ids), $dry['changed']);
        $this->assertSame('pending', $tm->getTask($ids[0])['status'], 'a dry run changes nothing');

        $done = $tm->cancelWhere(['type' => $type, 'ids' => [$ids[0], $ids[1]]], ['reason' => 'bulk']);
        $this->assertSame([$ids[1], $ids[0]], $done['changed']);
        $this->assertSame('bulk', $tm->history($ids[0])[1]['message']);

        $retried = $tm->retryWhere(['type' => $type], ['limit' => 2]);
        $this->assertSame(2, $retried['matched']);
        $this->assertSame([$ids[1]], $retried['changed']);
        $this->assertSame([['id' => $ids[2], 'code' => 'TM_CONFLICT', 'message' => "task {$ids[2]} is pending: retry needs a failed or cancelled task"]], $retried['skipped']);
        $this->assertSame($ids[1], $retried['next_before_id']);
        $rest = $tm->retryWhere(['type' => $type, 'before_id' => $retried['next_before_id']], ['limit' => 2]);
        $this->assertSame([$ids[0]], $rest['changed']);
        $this->assertNull($rest['next_before_id']);

        $this->expectException(Exception\InvalidArgumentException::class);
        $this->expectExceptionMessage('give task ids');
        $tm->cancelWhere([]);
    }

    public function testClaimByTypePatternAndTypeIds(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $other = $this->newType();
        $tm->enqueue($type, ['n' => 1]);
        $otherId = $tm->getType($other)['id'];
        $this->assertSame([], $tm->claim('w', ['type_pattern' => $type, 'type_ids' => [$otherId]]));
        // `_` stands for the dot; the server compares case-insensitively.
        $task = $tm->claim('w', ['type_pattern' => 'PHP_' . substr($type, 4), 'type_ids' => [$tm->getType($type)['id']]])[0];
        $this->assertSame($type, $task['type']);
        $this->expectException(Exception\InvalidArgumentException::class);
        $this->expectExceptionMessage('ends with the escape character');
        $tm->claim('w', ['type_pattern' => 'x\\']);
    }

    public function testKeyOrderDoesNotMatterForDedupe(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $a = $tm->enqueue($type, ['a' => 1, 'b' => ['y' => 2, 'x' => 1]]);
        $b = $tm->enqueue($type, ['b' => ['x' => 1, 'y' => 2], 'a' => 1]);
        $this->assertSame($a['id'], $b['id']);
        $this->assertTrue($b['deduplicated']);
        $batch = $tm->enqueueBatch([['type' => $type, 'params' => ['a' => 1, 'b' => ['x' => 1, 'y' => 2]]], ['type' => $type, 'params' => ['c' => 3]]]);
        $this->assertTrue($batch[0]['deduplicated']);
        $this->assertFalse($batch[1]['deduplicated']);
    }

    public function testUniqueWindowDedupesWithinItAndCreatesAfterIt(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $first = $tm->enqueue($type, ['day' => 1], ['unique_for_seconds' => 60]);
        $again = $tm->enqueue($type, ['day' => 1], ['unique_for_seconds' => 60]);
        $this->assertSame([$first['id'], true], [$again['id'], $again['deduplicated']]);
        // The window is passed by moving the first task's creation back, not by waiting.
        $c = self::config();
        $pdo = new \PDO("mysql:host={$c['db_host']};port={$c['db_port']};dbname={$c['db_name']}", $c['db_user'], $c['db_pass']);
        $pdo->exec("UPDATE tasks SET created_at = created_at - INTERVAL 60 SECOND WHERE id = {$first['id']}");
        $next = $tm->enqueue($type, ['day' => 1], ['unique_for_seconds' => 60]);
        $this->assertFalse($next['deduplicated']);
        $this->assertNotSame($first['id'], $next['id']);
        $this->expectException(Exception\InvalidArgumentException::class);
        $this->expectExceptionMessage('unique_for_seconds');
        $tm->enqueue($type, ['day' => 2], ['unique_for_seconds' => 0]);
    }

    public function testCompleteAndClaimFinishesOneTaskAndLeasesTheNext(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $first = $tm->enqueue($type, ['n' => 1], ['priority' => 1])['id'];
        $second = $tm->enqueue($type, ['n' => 2])['id'];
        $task = $tm->claim('php-loop', ['types' => [$type]])[0];
        $this->assertSame($first, $task['id']);

        $step = $tm->completeAndClaim($task['id'], $task['lease_token'], ['ok' => true], 'php-loop', ['types' => [$type]]);
        $this->assertFalse($step['completed']['repeated']);
        $this->assertSame(['ok' => true], $tm->getTask($first)['result']);
        $this->assertSame([$second], array_column($step['claimed'], 'id'));
        $this->assertSame('claimed', $tm->getTask($second)['status']);

        $again = $tm->completeAndClaim($task['id'], $task['lease_token'], ['ok' => true], 'php-loop', ['types' => [$type]]);
        $this->assertTrue($again['completed']['repeated']);
        $this->assertSame([], $again['claimed']);

        $this->expectException(Exception\LeaseLostException::class);
        $tm->completeAndClaim($second, 'stale.token', null, 'php-loop');
    }

    public function testStaleTokenIsRejectedAndChangesNothing(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['n' => 1])['id'];
        $task = $tm->claim('w', ['types' => [$type]])[0];
        try {
            $tm->complete($id, $task['lease_token'] . 'x', ['stolen' => true]);
            $this->fail('a stale token must not complete the task');
        } catch (Exception\LeaseLostException $e) {
            $this->assertSame(Code::LEASE_LOST, $e->getTmCode());
            $this->assertSame(Code::LEASE_LOST, $e->getCode());
        }
        $this->assertSame('claimed', $tm->getTask($id)['status']);
        $this->assertNull($tm->getTask($id)['result']);
    }

    public function testVersionsAreTextAndIntegersBecomeTheirDecimalText(): void
    {
        $tm = TaskManager::getInstance();
        $name = 'php.versions.' . bin2hex(random_bytes(4));
        $this->assertSame('1.0.0', $tm->registerType($name, ['type' => 'object'], '1.0.0')['version']);
        $this->assertSame('7', $tm->registerType($name, ['type' => 'array'], 7)['version']);
        $this->assertSame('1', $tm->registerType($name . '.default', ['type' => 'object'])['version']);
    }

    public function testLegacyCallersFinishByTheClaimingWorkerIdInTheirOrder(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $old = $tm->enqueue($type, ['n' => 1], ['priority' => 9])['id'];
        $new = $tm->enqueue($type, ['n' => 2])['id'];
        $task = $tm->claim('legacy', ['types' => [$type], 'sort_by' => 'id', 'sort_order' => 'DESC'])[0];
        $this->assertSame($new, $task['id']);
        try {
            $tm->completeAsWorker($new, 'someone-else', ['x' => 1]);
            $this->fail('another worker id must not complete the task');
        } catch (Exception\LeaseLostException $e) {
            $this->assertSame('claimed', $e->getDetails()['status']);
        }
        $this->assertSame(40, $tm->heartbeatAsWorker($new, 'legacy', ['progress' => 40])['progress']);
        $this->assertSame('completed', $tm->completeAsWorker($new, 'legacy', ['ok' => true])['status']);
        $this->assertTrue($tm->completeAsWorker($new, 'legacy', ['ok' => true])['repeated']);
        $this->assertSame(['ok' => true], $tm->getTask($new)['result']);
        $task = $tm->claim('legacy', ['types' => [$type]])[0];
        $this->assertSame($old, $task['id']);
        $this->assertSame('failed', $tm->failAsWorker($old, 'legacy', 'no', ['retry' => false])['status']);
    }

    public function testPruneAndMetrics(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['n' => 1])['id'];
        $task = $tm->claim('w', ['types' => [$type]])[0];
        $tm->complete($id, $task['lease_token'], ['ok' => true]);
        $report = $tm->prune(0, ['dry_run' => true]);
        $this->assertTrue($report['dry_run']);
        $this->assertGreaterThanOrEqual(1, $report['tasks']);
        $this->assertStringContainsString('taskmanager_tasks{type="' . $type . '",status="completed"} 1', $tm->metrics());
        $done = $tm->prune(0, ['batch_size' => 100]);
        $this->assertTrue($done['done']);
        $this->assertGreaterThanOrEqual(1, $done['tasks']);
        $this->expectException(Exception\NotFoundException::class);
        $tm->getTask($id);
    }

    public function testValidationListsEveryViolation(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType(['type' => 'object', 'required' => ['email'], 'properties' => ['age' => ['type' => 'integer', 'minimum' => 0]]]);
        try {
            $tm->enqueue($type, ['age' => -3]);
            $this->fail('invalid params must be refused');
        } catch (Exception\ValidationException $e) {
            $paths = array_column($e->getViolations(), 'path');
            sort($paths);
            $this->assertSame(['/', '/age'], $paths);
            $this->assertStringContainsString('2 violations', $e->getMessage());
        }
        $this->assertSame(0, $tm->stats()['types'][$type]['pending']);
    }

    /** @return iterable<string, array{class-string, int, callable}> */
    public static function errorCases(): iterable
    {
        yield 'not found' => [Exception\NotFoundException::class, Code::NOT_FOUND, fn (TaskManager $tm) => $tm->getTask(987654321)];
        yield 'unknown type' => [Exception\NotFoundException::class, Code::NOT_FOUND, fn (TaskManager $tm) => $tm->enqueue('php.no-such-type', ['a' => 1])];
        yield 'id below 1' => [Exception\InvalidArgumentException::class, Code::INVALID_ARGUMENT, fn (TaskManager $tm) => $tm->getTask(0)];
        yield 'bad option' => [Exception\InvalidArgumentException::class, Code::INVALID_ARGUMENT, fn (TaskManager $tm) => $tm->claim('w', ['limit' => 0])];
        yield 'unknown option' => [Exception\InvalidArgumentException::class, Code::INVALID_ARGUMENT, fn (TaskManager $tm) => $tm->claim('w', ['limt' => 1])];
        yield 'NUL byte' => [Exception\InvalidArgumentException::class, Code::INVALID_ARGUMENT, fn (TaskManager $tm) => $tm->claim("w\0x")];
        yield 'invalid UTF-8' => [Exception\InvalidArgumentException::class, Code::INVALID_ARGUMENT, fn (TaskManager $tm) => $tm->claim("w\xff")];
        yield 'too large' => [Exception\InvalidArgumentException::class, Code::PAYLOAD_TOO_LARGE, fn (TaskManager $tm) => $tm->enqueue('x', ['blob' => str_repeat('x', 2 << 20)])];
        yield 'invalid schema' => [Exception\InvalidSchemaException::class, Code::INVALID_SCHEMA, fn (TaskManager $tm) => $tm->registerType('php.bad-schema', ['type' => 42])];
        yield 'conflict' => [Exception\ConflictException::class, Code::CONFLICT, function (TaskManager $tm) {
            $tm->registerType('php.conflict', ['type' => 'object'], '3.0.0');
            $tm->registerType('php.conflict', ['type' => 'array'], '3.0.0');
        }];
    }

    /** @dataProvider errorCases */
    public function testEachErrorHasItsExceptionClass(string $class, int $code, callable $call): void
    {
        try {
            $call(TaskManager::getInstance());
            $this->fail("expected $class");
        } catch (Exception\TaskManagerException $e) {
            $this->assertInstanceOf($class, $e, $e->getMessage());
            $this->assertSame($code, $e->getTmCode());
            $this->assertNotSame('', $e->getMessage());
        }
    }

    public function testInactiveTypeRefusesNewTasks(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $tm->setTypeActive($type, false);
        $this->expectException(Exception\TypeInactiveException::class);
        $tm->enqueue($type, ['n' => 1]);
    }

    public function testConfigAndSchemaErrors(): void
    {
        TaskManager::configure(self::config(null, ['db_nme' => 'typo']));
        try {
            TaskManager::getInstance();
            $this->fail('an unknown setting must be refused');
        } catch (Exception\ConfigException $e) {
            $this->assertStringContainsString('db_nme', $e->getMessage());
        }
        TaskManager::configure(self::config((string) getenv('TM_PHP_EMPTY_DB')));
        try {
            TaskManager::getInstance()->stats();
            $this->fail('an unmigrated database must be reported');
        } catch (Exception\SchemaOutdatedException $e) {
            $this->assertStringContainsString('migrat', $e->getMessage());
        }
    }

    /** The server's refusals: credentials (never echoed) and nothing listening. */
    public function testServerLoginAndConnectionErrors(): void
    {
        TaskManager::configure(self::config(null, ['db_pass' => 'Wr0ng-Secret', 'db_user' => 'nobody-at-all']));
        try {
            TaskManager::getInstance();
            $this->fail('bad credentials must be refused');
        } catch (Exception\ConfigException $e) {
            $this->assertStringNotContainsString('Wr0ng-Secret', $e->getMessage() . json_encode($e->getDetails()));
        }
        TaskManager::configure(self::config(null, ['db_port' => 1, 'connect_timeout' => 2]));
        try {
            TaskManager::getInstance();
            $this->fail('an unreachable server must be reported');
        } catch (Exception\ConnectionException $e) {
            $this->assertSame(Code::CONNECTION, $e->getTmCode());
        }
    }

    public function testMissingPrivilegesAreADatabaseErrorWithTheServerCode(): void
    {
        TaskManager::configure(self::config((string) getenv('TM_PHP_RT_DB'), ['db_user' => (string) getenv('TM_PHP_RT_USER'), 'db_pass' => '']));
        try {
            TaskManager::getInstance()->migrate();
            $this->fail('a data-only account must not be able to run DDL');
        } catch (Exception\DatabaseException $e) {
            $this->assertSame(Code::DATABASE, $e->getTmCode());
            $this->assertSame(1142, $e->getDetails()['server_code']);
            $this->assertStringContainsString('privilege', $e->getMessage());
        }
    }

    public function testEveryCodeHasAnExceptionThatCarriesIt(): void
    {
        $codes = (new \ReflectionClass(Code::class))->getConstants();
        unset($codes['OK']);
        $this->assertCount(16, $codes);
        foreach ($codes as $name => $code) {
            $class = Code::exceptionClass($code);
            $this->assertNotSame(Exception\TaskManagerException::class, $class, "$name has no exception class of its own");
            $e = new $class("message for $name", $code);
            $this->assertInstanceOf(Exception\TaskManagerException::class, $e);
            $this->assertSame($code, $e->getTmCode());
        }
        $this->assertInstanceOf(Exception\ConnectionException::class, new Exception\OutcomeUnknownException('x', Code::OUTCOME_UNKNOWN));
    }

    public function testTheExamplesRunEndToEnd(): void
    {
        $env = 'TASKMANAGER_DATABASE_URL=' . escapeshellarg(self::databaseUrl()) . ' ';
        $dir = dirname(__DIR__) . '/examples';
        $produced = shell_exec($env . escapeshellarg(PHP_BINARY) . ' ' . escapeshellarg("$dir/producer.php") . ' 3 2>&1');
        $this->assertSame(3, substr_count((string) $produced, 'enqueued task'), (string) $produced);
        $worked = shell_exec($env . escapeshellarg(PHP_BINARY) . ' ' . escapeshellarg("$dir/worker.php") . ' --once 2>&1');
        $this->assertStringContainsString('worker: 3 task(s) done', (string) $worked);
    }

    public function testSingletonCannotBeClonedOrUnserialized(): void
    {
        $this->assertSame(TaskManager::getInstance(), TaskManager::getInstance());
        $constructor = new \ReflectionMethod(TaskManager::class, '__construct');
        $this->assertTrue($constructor->isPrivate());
        $this->assertTrue((new \ReflectionMethod(TaskManager::class, '__clone'))->isPrivate());
        $this->expectException(\LogicException::class);
        unserialize('O:23:"TaskManager\TaskManager":0:{}');
    }

    public function testTenThousandCallsKeepMemoryFlat(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['n' => 1])['id'];
        $round = function () use ($tm, $id): void {
            $tm->getTask($id);
            try {
                $tm->getTask(999999999);
            } catch (Exception\NotFoundException) {
            }
        };
        for ($i = 0; $i < 500; $i++) {
            $round();
        }
        gc_collect_cycles();
        [$memBefore, $rssBefore] = [memory_get_usage(), self::rssKb()];
        for ($i = 0; $i < 5000; $i++) { // 10,000 calls: half succeed, half throw
            $round();
        }
        gc_collect_cycles();
        [$memAfter, $rssAfter] = [memory_get_usage(), self::rssKb()];
        $this->assertLessThan(64 * 1024, $memAfter - $memBefore, "PHP heap grew from $memBefore to $memAfter bytes");
        $this->assertLessThan(2048, $rssAfter - $rssBefore, "RSS grew from {$rssBefore} kB to {$rssAfter} kB");
    }

    public function testParentAndChildBothWorkAfterFork(): void
    {
        if (!function_exists('pcntl_fork')) {
            $this->fail('the pcntl extension is required for this test');
        }
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $tm->enqueue($type, ['by' => 'parent-before']);
        $pid = pcntl_fork();
        $this->assertNotSame(-1, $pid);
        if ($pid === 0) {
            $ok = false;
            try {
                $child = TaskManager::getInstance();
                $e = $child->enqueue($type, ['by' => 'child']);
                $ok = !$e['deduplicated'] && count($child->claim('child', ['types' => [$type]])) === 1;
            } catch (\Throwable) {
            }
            // Leave without running PHPUnit's shutdown in the child.
            posix_kill(posix_getpid(), $ok ? SIGUSR1 : SIGUSR2);
            exit($ok ? 0 : 1);
        }
        pcntl_waitpid($pid, $status);
        $childOk = (pcntl_wifexited($status) && pcntl_wexitstatus($status) === 0)
            || (pcntl_wifsignaled($status) && pcntl_wtermsig($status) === SIGUSR1);
        $this->assertTrue($childOk, 'the child could not use the library after fork');
        $tasks = $tm->claim('parent', ['types' => [$type], 'limit' => 5]);
        $this->assertCount(1, $tasks);
        $this->assertSame(2, array_sum($tm->stats()['types'][$type]));
    }

    public function testDeclarationFileLoadsWithoutPreprocessor(): void
    {
        $declarations = file_get_contents(Native::declarationFile());
        $this->assertDoesNotMatchRegularExpression('/^\s*#/m', $declarations);
        $ffi = \FFI::cdef($declarations, Native::libraryPath());
        $this->assertSame(TaskManager::version(), $ffi->tm_version());
        $this->assertSame(Code::NOT_FOUND, $ffi->TM_NOT_FOUND);
        $this->assertSame(Code::PANIC, $ffi->TM_PANIC);
    }

    public function testMissingLibraryNamesEveryPathTried(): void
    {
        // A copy of the package away from any build tree, with a wrong override.
        $dir = sys_get_temp_dir() . '/tm-php-' . bin2hex(random_bytes(4));
        mkdir($dir . '/src/Exception', 0777, true);
        foreach (glob(dirname(__DIR__) . '/src/{,Exception/}*.{php,h}', GLOB_BRACE) as $file) {
            copy($file, $dir . '/src/' . substr($file, strlen(dirname(__DIR__) . '/src/')));
        }
        $script = 'require "' . $dir . '/src/autoload.php"; try { TaskManager\Native::ffi(); } '
            . 'catch (TaskManager\Exception\LibraryException $e) { echo $e->getMessage(); }';
        $output = shell_exec('TASKMANAGER_LIB=/nonexistent/libtaskmanager.so ' . escapeshellarg(PHP_BINARY) . ' -r ' . escapeshellarg($script));
        array_map('unlink', array_merge(glob("$dir/src/Exception/*"), glob("$dir/src/*.*")));
        rmdir("$dir/src/Exception");
        rmdir("$dir/src");
        rmdir($dir);
        $this->assertStringContainsString('/nonexistent/libtaskmanager.so', (string) $output);
        $this->assertStringContainsString($dir . '/lib/libtaskmanager.so', (string) $output);
        $this->assertStringContainsString('TASKMANAGER_LIB', (string) $output);
    }

    private static function runPhp(array $ini, string $code): string
    {
        $args = '';
        foreach ($ini as $key => $value) {
            $args .= ' -d ' . escapeshellarg("$key=$value");
        }
        $prelude = 'require ' . var_export(dirname(__DIR__) . '/src/autoload.php', true) . ';';
        return (string) shell_exec(escapeshellarg(PHP_BINARY) . $args . ' -r ' . escapeshellarg($prelude . $code) . ' 2>&1');
    }

    public function testFfiPreloadScopeIsUsedWhenPresent(): void
    {
        $header = tempnam(sys_get_temp_dir(), 'tm-preload');
        file_put_contents($header, Native::preloadHeader());
        $config = var_export(self::config(), true);
        $output = self::runPhp(['ffi.enable' => 'preload', 'ffi.preload' => $header], '
            $viaScope = \FFI::scope("taskmanager")->tm_version();
            TaskManager\TaskManager::configure(' . $config . ');
            $tm = TaskManager\TaskManager::getInstance();
            echo "scope ", $viaScope, " stats ", count($tm->stats()["totals"]);
        ');
        unlink($header);
        $this->assertSame('scope ' . TaskManager::version() . ' stats 5', trim($output));
    }

    public function testPreloadIgnoresPlantedFilesAndLeavesNoneBehind(): void
    {
        // Another account plants a header at the name an earlier version used: a bogus library.
        $header = Native::preloadHeader();
        $planted = sys_get_temp_dir() . '/taskmanager-' . md5($header) . '.h';
        file_put_contents($planted, "#define FFI_LIB \"/nonexistent/evil.so\"\nint evil(void);\n");
        $before = glob(sys_get_temp_dir() . '/taskmanager-*');
        $output = self::runPhp(['ffi.enable' => '1'], '
            TaskManager\Native::preload();
            echo "loaded";
        ');
        $after = glob(sys_get_temp_dir() . '/taskmanager-*');
        unlink($planted);
        $this->assertSame('loaded', trim($output));
        $this->assertSame($before, $after, 'preload leaves no file behind');
    }

    public function testDisabledFfiSaysWhatToChange(): void
    {
        $output = self::runPhp(['ffi.enable' => '0'], '
            try { TaskManager\Native::ffi(); } catch (TaskManager\Exception\LibraryException $e) { echo $e->getMessage(); }
        ');
        $this->assertStringContainsString("ffi.enable is '0'", $output);
        $this->assertStringContainsString('ffi.preload', $output);
        $this->assertStringContainsString('ffi.enable=true', $output);
    }
}
