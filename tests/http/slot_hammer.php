<?php
// Adds 1 to one record of a SlotFile N times, as fast as it can: several of these at once
// show whether concurrent read-modify-writes lose updates.
//
//   php slot_hammer.php FILE N
declare(strict_types=1);

require __DIR__ . '/../../php/api/src/SlotFile.php';

[$script, $file, $times] = $argv;
$slots = new TaskManager\Api\SlotFile($file, 16);
for ($i = 0; $i < (int) $times; $i++) {
    $slots->update('shared', static fn (?array $r): array => ['time' => 1, 'a' => ($r['a'] ?? 0) + 1, 'b' => 0]);
}
echo json_encode($slots->update('shared', static fn (?array $r): ?array => $r)), "\n";
