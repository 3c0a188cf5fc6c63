<?php

declare(strict_types=1);

namespace TaskManager\Tests;

use TaskManager\Exception;
use TaskManager\TaskManager;

/** Recurring tasks from PHP: put, a bad field named in the error, list, a tick, delete. */
final class ScheduleTest extends TestCase
{
    public function testScheduleRoundTripAndATick(): void
    {
        $tm = TaskManager::getInstance();
        $type = $this->newType();
        $name = 'php.' . bin2hex(random_bytes(4));
        $made = $tm->schedulePut(['name' => $name, 'type' => $type, 'cron' => '0 3 * * *',
            'timezone' => 'Europe/Prague', 'params' => ['report' => 'daily']]);
        $this->assertSame([$name, $type, 'skip', true], [$made['name'], $made['type'], $made['misfire'], $made['changed']]);
        $this->assertStringEndsWith(':00:00.000000Z', $made['next_run_at']);
        $this->assertContains($name, array_column($tm->scheduleList(), 'name'));
        $this->assertSame($made['id'], $tm->scheduleGet($name)['id']);

        try {
            $tm->schedulePut(['name' => $name, 'type' => $type, 'cron' => '0 3 * * *', 'misfire' => 'often']);
            $this->fail('an unknown misfire policy was accepted');
        } catch (Exception\InvalidArgumentException $e) {
            $this->assertStringContainsString('misfire', $e->getMessage());
        }
        // Every second: the tick enqueues once the database's clock reaches the occurrence.
        $tm->schedulePut(['name' => "$name.beat", 'type' => $type, 'cron' => '* * * * * *', 'params' => []]);
        $made = [];
        for ($i = 0; $i < 100000 && $made === []; $i++) {
            $made = array_values(array_filter($tm->schedulesTick()['enqueued'],
                static fn (array $t): bool => $t['schedule'] === "$name.beat"));
        }
        $this->assertCount(1, $made);
        $task = $tm->getTask($made[0]['task_id']);
        $this->assertSame("schedule:$name.beat@{$made[0]['scheduled_for']}", $task['dedupe_key']);

        $this->assertSame($name, $tm->scheduleDelete($name)['name']);
        $this->assertSame("$name.beat", $tm->scheduleDelete("$name.beat")['name']);
        $this->expectException(Exception\NotFoundException::class);
        $tm->scheduleDelete($name);
    }
}
