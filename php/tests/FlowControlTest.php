<?php

declare(strict_types=1);

namespace TaskManager\Tests;

use TaskManager\Exception;
use TaskManager\TaskManager;

/**
 * Flow control from PHP against the real library and server: pausing and resuming a type,
 * max_running, rate limits with the claim report's next_allowed_at, waiting claims (a task
 * enqueued by another process during the wait, the deadline), and every bad value named in its
 * error. Each test uses types of its own and claims only those.
 */
final class FlowControlTest extends TestCase
{
    public function testAPausedTypeIsNotClaimedUntilResumed(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $other = $this->newType();
        $tm->enqueue($type, ['n' => 'running']);
        $running = $tm->claim('w', ['types' => [$type]])[0];

        $paused = $tm->pauseType($type);
        $this->assertSame([$type, true, null], [$paused['name'], $paused['paused'], $paused['paused_until']]);
        $this->assertTrue($tm->getType($type)['paused']);

        // Enqueues are still accepted; claims that begin now hand out none of the type's tasks,
        // but take other types' work.
        $queued = $tm->enqueue($type, ['n' => 'queued']);
        $this->assertSame('pending', $queued['status']);
        $otherId = $tm->enqueue($other, ['n' => 'other'])['id'];
        $this->assertSame([$otherId], array_column($tm->claim('w', ['types' => [$type, $other], 'limit' => 10]), 'id'));
        $this->assertSame([], $tm->claim('w', ['types' => [$type], 'limit' => 10]));
        $this->assertSame([], $tm->claimReport('w', ['types' => [$type]])['tasks']);
        // A task claimed before the pause finishes normally.
        $this->assertSame('completed', $tm->complete($running['id'], $running['lease_token'], ['ok' => true])['status']);
        $this->assertSame('pending', $tm->getTask($queued['id'])['status']);
        $this->assertSame(0, $tm->getTask($queued['id'])['attempts'], 'a paused task spends no attempt');

        $stats = $tm->stats();
        $this->assertTrue($stats['flow'][$type]['paused']);
        $this->assertStringContainsString('taskmanager_type_paused{type="' . $type . '"} 1', $tm->metrics());

        $resumed = $tm->resumeType($type);
        $this->assertSame([false, null], [$resumed['paused'], $resumed['paused_until']]);
        $tasks = $tm->claim('w', ['types' => [$type], 'limit' => 10]);
        $this->assertSame([$queued['id']], array_column($tasks, 'id'));
        $this->assertSame(1, $tasks[0]['attempts']);
    }

    public function testPauseUntilIsReportedAsTheNextAllowedStart(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $tm->enqueue($type, ['n' => 1]);
        $until = gmdate('Y-m-d\TH:i:s\Z', time() + 3600);
        $paused = $tm->pauseType($type, $until);
        $this->assertTrue($paused['paused']);
        $this->assertSame(strtotime($until), strtotime($paused['paused_until']));

        $report = $tm->claimReport('w', ['types' => [$type], 'limit' => 5]);
        $this->assertSame([], $report['tasks']);
        $this->assertNotNull($report['next_allowed_at']);
        $this->assertSame(strtotime($until), strtotime($report['next_allowed_at']));
        $this->assertFalse($tm->resumeType($type)['paused']);
        $report = $tm->claimReport('w', ['types' => [$type], 'limit' => 5]);
        $this->assertCount(1, $report['tasks']);
        $this->assertArrayHasKey('lease_token', $report['tasks'][0]);
    }

    public function testABadPauseNamesUntilAndAnUnknownTypeIsNotFound(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        foreach ([gmdate('Y-m-d\TH:i:s\Z', time() - 60), gmdate('Y-m-d\TH:i:s\Z', time() + 2 * 366 * 86400), 'next tuesday'] as $until) {
            try {
                $tm->pauseType($type, $until);
                $this->fail("pause until $until was accepted");
            } catch (Exception\InvalidArgumentException $e) {
                $this->assertStringContainsString('until', $e->getMessage());
            }
        }
        $this->assertFalse($tm->getType($type)['paused'], 'a refused pause changes nothing');
        foreach ([
            fn () => $tm->pauseType("$type.missing"),
            fn () => $tm->resumeType("$type.missing"),
            fn () => $tm->setTypeLimits("$type.missing", ['max_running' => 1]),
        ] as $call) {
            try {
                $call();
                $this->fail('an unknown type was accepted');
            } catch (Exception\NotFoundException) {
                $this->addToAssertionCount(1);
            }
        }
    }

    public function testMaxRunningOneHandsOutTheSecondTaskOnlyAfterTheFirstCompletes(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $other = $this->newType();
        $limited = $tm->setTypeLimits($type, ['max_running' => 1]);
        $this->assertSame([1, null], [$limited['max_running'], $limited['rate']]);
        $first = $tm->enqueue($type, ['n' => 1], ['priority' => 1])['id'];
        $second = $tm->enqueue($type, ['n' => 2])['id'];

        $tasks = $tm->claim('w', ['types' => [$type], 'limit' => 10]);
        $this->assertSame([$first], array_column($tasks, 'id'));
        $this->assertSame([], $tm->claim('w', ['types' => [$type], 'limit' => 10]));
        // A saturated type is skipped, not waited for: the claim takes other types' tasks.
        $otherId = $tm->enqueue($other, ['n' => 3])['id'];
        $this->assertSame([$otherId], array_column($tm->claim('w', ['types' => [$type, $other], 'limit' => 10]), 'id'));
        $this->assertSame(1, $tm->stats()['flow'][$type]['running']);
        $this->assertSame(0, $tm->getTask($second)['attempts'], 'a limited task spends no attempt');

        $tm->complete($first, $tasks[0]['lease_token'], ['ok' => true]);
        $this->assertSame([$second], array_column($tm->claim('w', ['types' => [$type], 'limit' => 10]), 'id'));

        $cleared = $tm->setTypeLimits($type, ['max_running' => null]);
        $this->assertNull($cleared['max_running']);
    }

    public function testARateOfTwoPerMinuteRefusesTheThirdAndReportsWhenItMayStart(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $tm->setTypeLimits($type, ['max_running' => 5]);
        $limited = $tm->setTypeLimits($type, ['rate' => ['limit' => 2, 'per_seconds' => 60]]);
        $this->assertSame(5, $limited['max_running'], 'a key left out keeps its value');
        $this->assertSame(['limit' => 2, 'per_seconds' => 60, 'burst' => 0], $limited['rate']);
        $this->assertEquals($limited['rate'], $tm->getType($type)['rate']);
        $ids = array_map(fn (int $n) => $tm->enqueue($type, ['n' => $n])['id'], [1, 2, 3]);

        $claimedAt = time();
        $one = $tm->claim('w', ['types' => [$type]]);
        $two = $tm->claim('w', ['types' => [$type]]);
        $this->assertSame([$ids[0], $ids[1]], [$one[0]['id'], $two[0]['id']]);
        $this->assertSame([], $tm->claim('w', ['types' => [$type]]));
        // The rate counts starts, not running tasks: finishing them frees nothing.
        $tm->complete($one[0]['id'], $one[0]['lease_token']);
        $tm->complete($two[0]['id'], $two[0]['lease_token']);
        $report = $tm->claimReport('w', ['types' => [$type], 'limit' => 10]);
        $this->assertSame([], $report['tasks']);
        $this->assertIsString($report['next_allowed_at']);
        // The window opens again when the first start leaves it: about a minute after it.
        $next = strtotime($report['next_allowed_at']);
        $this->assertGreaterThanOrEqual($claimedAt + 50, $next, "next_allowed_at {$report['next_allowed_at']} is too early");
        $this->assertLessThanOrEqual($claimedAt + 62, $next, "next_allowed_at {$report['next_allowed_at']} is past the window");
        $this->assertSame(2, $tm->stats()['flow'][$type]['started_in_window']);
        $this->assertSame(0, $tm->getTask($ids[2])['attempts']);

        $cleared = $tm->setTypeLimits($type, ['rate' => null]);
        $this->assertSame([5, null], [$cleared['max_running'], $cleared['rate']]);
        $this->assertSame([$ids[2]], array_column($tm->claim('w', ['types' => [$type]]), 'id'));
    }

    /** @dataProvider badLimits */
    public function testABadLimitNamesItsField(array $limits, string $field): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        try {
            $tm->setTypeLimits($type, $limits);
            $this->fail('accepted ' . json_encode($limits));
        } catch (Exception\InvalidArgumentException $e) {
            $this->assertStringContainsString($field, $e->getMessage());
        }
        $kept = $tm->getType($type);
        $this->assertSame([null, null], [$kept['max_running'], $kept['rate']], 'a refused change changes nothing');
    }

    public static function badLimits(): array
    {
        return [
            'negative max_running' => [['max_running' => -1], 'max_running'],
            'zero max_running' => [['max_running' => 0], 'max_running'],
            'max_running over 100000' => [['max_running' => 100001], 'max_running'],
            'zero rate.limit' => [['rate' => ['limit' => 0, 'per_seconds' => 60]], 'rate.limit'],
            'zero rate.per_seconds' => [['rate' => ['limit' => 1, 'per_seconds' => 0]], 'rate.per_seconds'],
            'rate.per_seconds over a year' => [['rate' => ['limit' => 1, 'per_seconds' => 31536001]], 'rate.per_seconds'],
            'negative rate.burst' => [['rate' => ['limit' => 1, 'per_seconds' => 60, 'burst' => -1]], 'rate.burst'],
        ];
    }

    public function testClaimRefusesTheReportOptionAndPointsToClaimReport(): void
    {
        $this->expectException(Exception\InvalidArgumentException::class);
        $this->expectExceptionMessage('claimReport');
        TaskManager::getInstance()->claim('w', ['report' => true]);
    }

    /** @requires extension pcntl */
    public function testAWaitingClaimReturnsATaskAnotherProcessEnqueuesDuringTheWait(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $note = tempnam(sys_get_temp_dir(), 'tm-flow-');
        $pid = pcntl_fork();
        $this->assertNotSame(-1, $pid);
        if ($pid === 0) {
            $ok = false;
            try {
                usleep(1_000_000); // lets the parent's claim begin its wait first
                $id = TaskManager::getInstance()->enqueue($type, ['from' => 'child'])['id'];
                $ok = file_put_contents($note, json_encode(['id' => $id, 'at' => microtime(true)])) !== false;
            } catch (\Throwable) {
            }
            // Leave without running PHPUnit's shutdown in the child.
            posix_kill(posix_getpid(), $ok ? SIGUSR1 : SIGUSR2);
            exit($ok ? 0 : 1);
        }
        try {
            $started = microtime(true);
            $tasks = $tm->claim('w', ['types' => [$type], 'wait_seconds' => 30]);
            $returned = microtime(true);
        } finally {
            pcntl_waitpid($pid, $status);
        }
        $childOk = (pcntl_wifexited($status) && pcntl_wexitstatus($status) === 0)
            || (pcntl_wifsignaled($status) && pcntl_wtermsig($status) === SIGUSR1);
        $this->assertTrue($childOk, 'the child could not enqueue');
        $enqueued = json_decode((string) file_get_contents($note), true);
        unlink($note);
        $this->assertSame([$enqueued['id']], array_column($tasks, 'id'), 'the waiting claim did not return the task');
        $this->assertLessThan($enqueued['at'], $started, 'the claim began after the enqueue: nothing was waited for');
        $this->assertLessThan(20, $returned - $started, 'the claim ran to its deadline instead of waking');
    }

    public function testAWaitingClaimWithNothingToClaimReturnsEmptyAtItsDeadline(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $started = microtime(true);
        $this->assertSame([], $tm->claim('w', ['types' => [$type], 'wait_seconds' => 1.5]));
        $elapsed = microtime(true) - $started;
        $this->assertGreaterThanOrEqual(1.4, $elapsed, 'the claim did not wait');
        $this->assertLessThan(6, $elapsed, 'the claim waited well past its deadline');

        $report = $tm->claimReport('w', ['types' => [$type], 'wait_seconds' => 0.5]);
        $this->assertSame(['tasks' => [], 'next_allowed_at' => null], $report);
    }

    public function testCompleteAndClaimPassesTheWaitOn(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $id = $tm->enqueue($type, ['n' => 1])['id'];
        $task = $tm->claim('w', ['types' => [$type]])[0];
        $started = microtime(true);
        $step = $tm->completeAndClaim($id, $task['lease_token'], ['ok' => true], 'w', ['types' => [$type], 'wait_seconds' => 1]);
        $this->assertGreaterThanOrEqual(0.9, microtime(true) - $started, 'the claim did not wait');
        $this->assertSame(['completed', []], [$step['completed']['status'], $step['claimed']]);
        $this->assertSame('completed', $tm->getTask($id)['status']);
    }

    public function testAWaitOverAMinuteNamesWaitSeconds(): void
    {
        $this->expectException(Exception\InvalidArgumentException::class);
        $this->expectExceptionMessage('wait_seconds');
        TaskManager::getInstance()->claim('w', ['types' => [$this->newType()], 'wait_seconds' => 61]);
    }
}
