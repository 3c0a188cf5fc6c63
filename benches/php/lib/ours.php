<?php

declare(strict_types=1);

namespace TaskManager\Bench;

use RuntimeException;
use TaskManager\TaskManager;

/**
 * TaskManager through its PHP binding, used as an application uses it: configure() and
 * getInstance(), the type `bench` with a JSON Schema (validation on), the default dedupe key
 * (each task's params differ: {"n": k}), history on or off by configuration.
 */
final class Ours
{
    public const TYPE = 'bench';
    public const SCHEMA = '{"type":"object","properties":{"n":{"type":"integer"}}}';
    private const BATCH = 500;
    private const CLAIM_BATCH = 100;

    /** This process's client for $config. */
    public static function client(array $config): TaskManager
    {
        TaskManager::configure($config);
        return TaskManager::getInstance();
    }

    /** Creates the library's tables and registers the type (once, in the parent). */
    public static function setUp(TaskManager $tm): void
    {
        $tm->migrate();
        $tm->registerType(self::TYPE, self::SCHEMA);
    }

    /** One enqueue per task, params {"n": first..first+count-1}. @return array{done: int} */
    public static function enqueue(TaskManager $tm, int $first, int $count): array
    {
        for ($n = $first; $n < $first + $count; $n++) {
            $task = $tm->enqueue(self::TYPE, ['n' => $n]);
            if ($task['deduplicated']) {
                throw new RuntimeException("task {n: $n} was taken for a duplicate of #{$task['id']}");
            }
        }
        return ['done' => $count];
    }

    /** enqueueBatch() of 500 tasks at a time (also the untimed fill before a drain). @return array{done: int} */
    public static function enqueueBatches(TaskManager $tm, int $first, int $count): array
    {
        for ($from = $first; $from < $first + $count; $from += self::BATCH) {
            $items = [];
            for ($n = $from; $n < min($from + self::BATCH, $first + $count); $n++) {
                $items[] = ['type' => self::TYPE, 'params' => ['n' => $n]];
            }
            foreach ($tm->enqueueBatch($items) as $task) {
                if ($task['deduplicated']) {
                    throw new RuntimeException("task #{$task['id']} was taken for a duplicate");
                }
            }
        }
        return ['done' => $count];
    }

    /** A worker that claims one task and completes it, until nothing is left. @return array{ids: list<int>} */
    public static function drain(TaskManager $tm, string $worker): array
    {
        $ids = [];
        while ($tasks = $tm->claim($worker, ['limit' => 1])) {
            $ids[] = self::complete($tm, $tasks[0]);
        }
        return ['ids' => $ids];
    }

    /**
     * A worker that finishes each task and takes the next in one call (completeAndClaim), and
     * claims on its own only when that brought nothing, until a claim finds nothing.
     *
     * @return array{ids: list<int>}
     */
    public static function drainLooped(TaskManager $tm, string $worker): array
    {
        $ids = [];
        $held = $tm->claim($worker, ['limit' => 1]);
        while ($held !== []) {
            $task = $held[0];
            $step = $tm->completeAndClaim($task['id'], $task['lease_token'], null, $worker, ['limit' => 1]);
            if ($step['completed']['repeated'] ?? false) {
                throw new RuntimeException("task #{$task['id']} was completed twice");
            }
            $ids[] = $task['id'];
            $held = $step['claimed'] ?: $tm->claim($worker, ['limit' => 1]);
        }
        return ['ids' => $ids];
    }

    /** A worker that claims 100 tasks at a time and completes them with one completeBatch(). @return array{ids: list<int>} */
    public static function drainBatched(TaskManager $tm, string $worker): array
    {
        $ids = [];
        while ($tasks = $tm->claim($worker, ['limit' => self::CLAIM_BATCH])) {
            $items = array_map(static fn (array $t): array => ['id' => $t['id'], 'lease_token' => $t['lease_token']], $tasks);
            foreach ($tm->completeBatch($items) as $outcome) {
                if (!$outcome['ok']) {
                    throw new RuntimeException("task #{$outcome['id']} was not completed: " . ($outcome['message'] ?? $outcome['code'] ?? '?'));
                }
                $ids[] = $outcome['id'];
            }
        }
        return ['ids' => $ids];
    }

    /** Completes a claimed task; a repeated completion means someone else had it too. */
    private static function complete(TaskManager $tm, array $task): int
    {
        $done = $tm->complete($task['id'], $task['lease_token'], null);
        if ($done['repeated']) {
            throw new RuntimeException("task #{$task['id']} was completed twice");
        }
        return $task['id'];
    }

    /**
     * Empties the queue with the library's own operator actions, which know its tables
     * whatever their layout: pending tasks are cancelled, then every finished task is pruned
     * with its history.
     */
    public static function empty(TaskManager $tm): void
    {
        do {
            $cancelled = $tm->cancelWhere(['status' => 'pending'], ['limit' => 10000]);
        } while ($cancelled['changed'] !== []);
        do {
            $pruned = $tm->prune(0, ['batch_size' => 5000]);
        } while (!$pruned['done']);
        $left = $tm->listTasks(['limit' => 1]);
        if ($left !== []) {
            throw new RuntimeException("the queue is not empty after emptying it: task #{$left[0]['id']} is {$left[0]['status']}");
        }
    }

    /** Tasks by status. @return array<string, int> */
    public static function totals(TaskManager $tm): array
    {
        return $tm->stats()['totals'];
    }

    /** After an enqueue: exactly $count tasks, all pending. */
    public static function checkEnqueued(TaskManager $tm, int $count): void
    {
        $totals = self::totals($tm);
        if ($totals['pending'] !== $count || array_sum($totals) !== $count) {
            throw new RuntimeException("expected $count pending tasks, found " . json_encode($totals));
        }
    }

    /**
     * After a drain: the workers completed $count distinct tasks, each once, and the queue
     * holds $count completed tasks and nothing else.
     *
     * @param list<array{ids: list<int>}> $reports
     */
    public static function checkDrained(TaskManager $tm, int $count, array $reports): void
    {
        Checks::idsOnce($reports, $count);
        $totals = self::totals($tm);
        if ($totals['completed'] !== $count || array_sum($totals) !== $count) {
            throw new RuntimeException("expected $count completed tasks, found " . json_encode($totals));
        }
    }
}

/** Checks shared by the implementations. */
final class Checks
{
    /**
     * Every task was reported once, by one worker: a task two workers both claimed would be
     * reported twice.
     *
     * @param list<array{ids: list<int>}> $reports
     */
    public static function idsOnce(array $reports, int $count): void
    {
        $ids = array_merge(...array_column($reports, 'ids'));
        $distinct = count(array_unique($ids));
        if (count($ids) !== $count || $distinct !== $count) {
            throw new RuntimeException(sprintf('expected %d tasks done once each; the workers reported %d, %d distinct', $count, count($ids), $distinct));
        }
    }
}
