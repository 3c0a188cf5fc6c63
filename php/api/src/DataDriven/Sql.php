<?php

declare(strict_types=1);

namespace TaskManager\Api\DataDriven;

/**
 * The SQL text a published endpoint may produce, built only from its row's configuration.
 * Every identifier passes the original's checks and is then parsed into plain names, each
 * written back quoted in backticks: what reaches the server is exactly the structure the
 * checks read, never text they let through by accident (the original's pattern allowed
 * "tasks t UNION SELECT ..." as a table, spaces and letters being legal). Values never come
 * here: they are bound as parameters by the executor.
 */
final class Sql
{
    /** The original refused any identifier holding one of these, anywhere in it. */
    private const RESTRICTED = ['DROP', 'DELETE', 'TRUNCATE', 'ALTER', 'CREATE', 'EXEC', 'EXECUTE'];

    private const NAME = '[A-Za-z0-9_]+';

    /**
     * A table, optionally with an alias: "tasks", "tasks t", "tasks AS t", "db.tasks t".
     * The original's check first (letters, digits, `_`, `.`, spaces; no restricted keyword),
     * then the shape.
     */
    public static function table(mixed $text, string $what, bool $aliasAllowed = true): string
    {
        if (!is_string($text) || !preg_match('/^[a-zA-Z0-9_. ]+$/', $text)) {
            throw new ConfigError("invalid $what: only letters, digits, _, . and spaces are allowed");
        }
        $upper = strtoupper($text);
        foreach (self::RESTRICTED as $keyword) {
            if (str_contains($upper, $keyword)) {
                throw new ConfigError("invalid $what: contains the restricted keyword $keyword");
            }
        }
        $n = self::NAME;
        if (!preg_match("/^\s*($n(?:\.$n)?)(?:\s+(?:AS\s+)?($n))?\s*$/i", $text, $m)) {
            throw new ConfigError("invalid $what: expected a table name and an optional alias");
        }
        if (isset($m[2]) && !$aliasAllowed) {
            throw new ConfigError("invalid $what: no alias here");
        }
        return self::qualified($m[1]) . (isset($m[2]) ? ' ' . self::quote($m[2]) : '');
    }

    /** A column: "name" or "t.name" (the original's `[a-zA-Z0-9_.]+`). */
    public static function column(mixed $text, string $what, bool $qualifiedAllowed = true): string
    {
        $n = self::NAME;
        $pattern = $qualifiedAllowed ? "/^$n(?:\.$n)?$/" : "/^$n$/";
        if (!is_string($text) || !preg_match($pattern, $text)) {
            throw new ConfigError("invalid $what: expected a column name");
        }
        return self::qualified($text);
    }

    /** A select item: `*`, "col", "t.col", "col AS alias" (no expressions, as the original). */
    public static function selectItem(mixed $text): string
    {
        if ($text === '*') {
            return '*';
        }
        $n = self::NAME;
        if (!is_string($text) || !preg_match("/^\s*($n(?:\.$n)?)(?:\s+AS\s+($n))?\s*$/i", $text, $m)) {
            throw new ConfigError('invalid select field: expected *, col, t.col or col AS alias');
        }
        return self::qualified($m[1]) . (isset($m[2]) ? ' AS ' . self::quote($m[2]) : '');
    }

    /**
     * A where_optional key: a column, optionally followed by LIKE, <, >, <=, >= or !=.
     *
     * @return array{0: string, 1: ?string} the quoted column and the operator, if any
     */
    public static function condition(mixed $text): array
    {
        $n = self::NAME;
        if (!is_string($text) || !preg_match("/^\s*($n(?:\.$n)?)(?:\s+(LIKE|<=|>=|!=|<|>))?\s*$/i", $text, $m)) {
            throw new ConfigError('invalid where_optional field: expected a column and an optional LIKE, <, >, <=, >= or !=');
        }
        return [self::qualified($m[1]), isset($m[2]) ? strtoupper($m[2]) : null];
    }

    /** A join: INNER, LEFT or RIGHT, a table, and `a.x = b.y` conditions joined by AND. */
    public static function join(mixed $join): string
    {
        if (!is_array($join)) {
            throw new ConfigError('invalid join: expected an object with type, table and on');
        }
        $type = strtoupper(is_string($join['type'] ?? null) ? $join['type'] : 'INNER');
        if (!in_array($type, ['INNER', 'LEFT', 'RIGHT', 'OUTER'], true)) {
            throw new ConfigError('invalid join type: use INNER, LEFT or RIGHT');
        }
        if ($type === 'OUTER') {
            // The original accepted OUTER and then failed on it: MySQL has no bare OUTER JOIN.
            throw new ConfigError('invalid join type: MySQL and MariaDB have no OUTER JOIN; use LEFT or RIGHT');
        }
        $table = self::table($join['table'] ?? null, 'join table');
        $on = $join['on'] ?? null;
        if (!is_string($on) || !preg_match('/^[a-zA-Z0-9_. =]+$/', $on)) {
            throw new ConfigError('invalid join ON clause: only identifiers, spaces and = are allowed');
        }
        $n = self::NAME;
        $parts = [];
        foreach (preg_split('/\s+AND\s+/i', trim($on)) ?: [] as $equality) {
            if (!preg_match("/^($n(?:\.$n)?)\s*=\s*($n(?:\.$n)?)$/", $equality, $m)) {
                throw new ConfigError('invalid join ON clause: expected a.x = b.y, joined by AND');
            }
            $parts[] = self::qualified($m[1]) . ' = ' . self::qualified($m[2]);
        }
        return " $type JOIN $table ON " . implode(' AND ', $parts);
    }

    /**
     * ORDER BY: columns, each with an optional ASC or DESC, separated by commas. Never a
     * template: the original's seed row for listing types templated it, and its own checker
     * refused the braces, so that endpoint always failed; here it is refused as configuration.
     */
    public static function order(mixed $text): string
    {
        if (!is_string($text) || str_contains($text, '{')) {
            throw new ConfigError('invalid ORDER BY: a fixed list of columns with ASC or DESC; templates are not allowed');
        }
        $n = self::NAME;
        $items = [];
        foreach (explode(',', $text) as $item) {
            if (!preg_match("/^\s*($n(?:\.$n)?)(?:\s+(ASC|DESC))?\s*$/i", $item, $m)) {
                throw new ConfigError('invalid ORDER BY: a fixed list of columns with ASC or DESC');
            }
            $items[] = self::qualified($m[1]) . (isset($m[2]) ? ' ' . strtoupper($m[2]) : '');
        }
        return implode(', ', $items);
    }

    private static function qualified(string $name): string
    {
        return implode('.', array_map([self::class, 'quote'], explode('.', $name)));
    }

    private static function quote(string $name): string
    {
        // Names were matched against [A-Za-z0-9_]+, so no backtick can be inside.
        return '`' . $name . '`';
    }
}
