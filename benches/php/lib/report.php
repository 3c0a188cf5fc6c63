<?php

declare(strict_types=1);

namespace TaskManager\Bench;

/** Three runs of one measurement: their median, min and max. */
final class Figure
{
    private function __construct(public readonly float $median, public readonly float $min, public readonly float $max)
    {
    }

    /** @param list<float> $runs */
    public static function of(array $runs): self
    {
        sort($runs);
        return new self($runs[intdiv(count($runs), 2)], $runs[0], $runs[count($runs) - 1]);
    }

    public function cell(): string
    {
        return sprintf('%s (%s-%s)', self::number($this->median), self::number($this->min), self::number($this->max));
    }

    public static function number(float $value): string
    {
        return number_format($value, 0, '.', ',');
    }
}

/** The markdown table of the figures: floor, ours and Laravel side by side, with the ratios. */
final class Table
{
    /** @var list<list<string>> */
    private array $rows = [];

    /** A row; a missing figure leaves its cell and its ratio empty. */
    public function add(string $name, ?Figure $floor, ?Figure $ours, ?Figure $laravel = null): void
    {
        $ratio = static fn (?Figure $of, ?Figure $to): string =>
            $of === null || $to === null || $to->median == 0.0 ? '' : sprintf('%.2f', $of->median / $to->median);
        $this->rows[] = [
            $name,
            $floor?->cell() ?? '',
            $ours?->cell() ?? '',
            $ratio($ours, $floor),
            $laravel?->cell() ?? '',
            $ratio($ours, $laravel),
        ];
    }

    /** A row of text cells (e.g. "n/a"). @param list<string> $cells */
    public function addText(string $name, array $cells): void
    {
        $this->rows[] = [$name, ...array_pad($cells, 5, '')];
    }

    public function render(): string
    {
        $lines = [
            '| figure | floor | ours | ours/floor | Laravel | ours/Laravel |',
            '|---|---:|---:|---:|---:|---:|',
        ];
        foreach ($this->rows as $row) {
            $lines[] = '| ' . implode(' | ', $row) . ' |';
        }
        return implode("\n", $lines) . "\n";
    }
}
