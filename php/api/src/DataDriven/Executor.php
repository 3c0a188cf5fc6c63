<?php

declare(strict_types=1);

namespace TaskManager\Api\DataDriven;

use TaskManager\Api\HttpError;

/**
 * Runs a published endpoint's `query`, `insert`, `update` or `delete` action. The SQL text
 * comes only from the row's configuration through Sql's checks; every value, limit and offset
 * included, is a bound parameter of a server-side prepared statement.
 */
final class Executor
{
    /** The most rows one answer may ask for, and the furthest offset (as GET /tasks). */
    public const MAX_LIMIT = 1000;
    public const MAX_OFFSET = 1000000;

    /** @var list<array{0: mixed, 1: int}> values and PDO types, in placeholder order */
    private array $bound = [];

    public function __construct(private readonly \PDO $db, private readonly Template $request)
    {
    }

    /** @param array<string, mixed> $config */
    public function run(string $action, array $config): mixed
    {
        return match ($action) {
            'query' => $this->query($config),
            'insert' => $this->insert($config),
            'update' => $this->update($config),
            'delete' => $this->delete($config),
            default => throw new ConfigError('unknown action type: use query, insert, update, delete or custom'),
        };
    }

    /** @param array<string, mixed> $config */
    private function query(array $config): mixed
    {
        $select = $config['select'] ?? ['*'];
        if (!is_array($select) || $select === [] || !array_is_list($select)) {
            throw new ConfigError('select must be a list of fields');
        }
        $sql = 'SELECT ' . implode(', ', array_map([Sql::class, 'selectItem'], $select))
            . ' FROM ' . Sql::table($config['table'] ?? null, 'table name');
        foreach (self::listOf($config, 'joins') as $join) {
            $sql .= Sql::join($join);
        }
        $where = $this->equalities(self::mapOf($config, 'where'));
        foreach (self::mapOf($config, 'where_optional') as $field => $expression) {
            [$column, $operator] = Sql::condition($field);
            $value = $this->request->resolve($expression);
            if ($value === null || $value === '') {
                continue;
            }
            // No operator: equality, or LIKE when the value holds %, as the original chose.
            // The original wrote "col LIKE LIKE ?" and "col < = ?" for the operators it
            // accepted; here the operator named is the one used.
            $operator ??= is_string($value) && str_contains($value, '%') ? 'LIKE' : '=';
            $where[] = "$column $operator " . $this->bind($value);
        }
        if ($where !== []) {
            $sql .= ' WHERE ' . implode(' AND ', $where);
        }
        if (array_key_exists('order', $config)) {
            $sql .= ' ORDER BY ' . Sql::order($config['order']);
        }
        if (array_key_exists('limit', $config)) {
            $sql .= ' LIMIT ' . $this->bind($this->count('limit', $config['limit'], self::MAX_LIMIT));
        }
        if (array_key_exists('offset', $config)) {
            if (!array_key_exists('limit', $config)) {
                // MySQL takes no OFFSET without a LIMIT; the original sent it anyway and failed.
                $sql .= ' LIMIT ' . $this->bind(PHP_INT_MAX);
            }
            $sql .= ' OFFSET ' . $this->bind($this->count('offset', $config['offset'], self::MAX_OFFSET));
        }
        $transform = self::mapOf($config, 'transform');
        $statement = $this->execute($sql);
        if (!empty($config['single'])) {
            $row = $statement->fetch();
            if ($row === false) {
                throw new HttpError(404, 'Record not found');
            }
            return self::transform($row, $transform);
        }
        $rows = array_map(static fn (array $row): array => self::transform($row, $transform), $statement->fetchAll());
        return ['items' => $rows, 'count' => count($rows)];
    }

    /** @param array<string, mixed> $config */
    private function insert(array $config): array
    {
        $table = Sql::table($config['table'] ?? null, 'table name', false);
        $fields = self::mapOf($config, 'fields');
        if ($fields === []) {
            throw new ConfigError('insert needs fields (column -> value)');
        }
        $columns = [];
        $values = [];
        foreach ($fields as $column => $expression) {
            $columns[] = Sql::column($column, 'field name', false);
            $values[] = $this->bind($this->request->resolve($expression));
        }
        $statement = $this->execute("INSERT INTO $table (" . implode(', ', $columns) . ') VALUES (' . implode(', ', $values) . ')');
        return ['id' => (int) $this->db->lastInsertId(), 'affected_rows' => $statement->rowCount()];
    }

    /** @param array<string, mixed> $config */
    private function update(array $config): array
    {
        $table = Sql::table($config['table'] ?? null, 'table name', false);
        $set = self::mapOf($config, 'set');
        if ($set === []) {
            throw new ConfigError('update needs set (column -> value)');
        }
        $assignments = [];
        foreach ($set as $column => $expression) {
            $assignments[] = Sql::column($column, 'field name', false) . ' = ' . $this->bind($this->request->resolve($expression));
        }
        $where = $this->requiredWhere($config, 'update');
        return ['affected_rows' => $this->execute("UPDATE $table SET " . implode(', ', $assignments) . " WHERE $where")->rowCount()];
    }

    /** @param array<string, mixed> $config */
    private function delete(array $config): array
    {
        $table = Sql::table($config['table'] ?? null, 'table name', false);
        $where = $this->requiredWhere($config, 'delete');
        return ['affected_rows' => $this->execute("DELETE FROM $table WHERE $where")->rowCount()];
    }

    /**
     * An update or delete without `where` would change every row of the table on one
     * request (the original allowed it): refused as configuration.
     *
     * @param array<string, mixed> $config
     */
    private function requiredWhere(array $config, string $action): string
    {
        $where = $this->equalities(self::mapOf($config, 'where'));
        if ($where === []) {
            throw new ConfigError("$action needs where: without it every row of the table would change");
        }
        return implode(' AND ', $where);
    }

    /**
     * @param array<string, mixed> $map column -> value
     * @return list<string>
     */
    private function equalities(array $map): array
    {
        $clauses = [];
        foreach ($map as $column => $expression) {
            $clauses[] = Sql::column($column, 'WHERE field') . ' = ' . $this->bind($this->request->resolve($expression));
        }
        return $clauses;
    }

    /** A limit or offset: a whole number from 0 to $max, from the row or the request. */
    private function count(string $name, mixed $expression, int $max): int
    {
        $value = $this->request->resolve($expression);
        if (is_string($value) && preg_match('/^\d{1,18}$/', $value)) {
            $value = (int) $value;
        }
        if (!is_int($value) || $value < 0 || $value > $max) {
            throw HttpError::badRequest("Invalid $name: must be an integer from 0 to $max");
        }
        return $value;
    }

    /** Adds a value to bind and answers its placeholder. */
    private function bind(mixed $value): string
    {
        $this->bound[] = match (true) {
            $value === null => [null, \PDO::PARAM_NULL],
            is_bool($value) => [(int) $value, \PDO::PARAM_INT],
            is_int($value) => [$value, \PDO::PARAM_INT],
            is_float($value) => [(string) $value, \PDO::PARAM_STR],
            is_string($value) => [$value, \PDO::PARAM_STR],
            // An object or a list (a JSON body's params) is stored as its JSON text; the
            // original bound the word "Array".
            default => [(string) json_encode($value, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), \PDO::PARAM_STR],
        };
        return '?';
    }

    private function execute(string $sql): \PDOStatement
    {
        $statement = $this->db->prepare($sql);
        foreach ($this->bound as $i => [$value, $type]) {
            $statement->bindValue($i + 1, $value, $type);
        }
        $statement->execute();
        return $statement;
    }

    /**
     * @param array<string, mixed> $row
     * @param array<string, mixed> $transforms field -> json_decode | json_encode | uppercase | lowercase
     * @return array<string, mixed>
     */
    private static function transform(array $row, array $transforms): array
    {
        foreach ($transforms as $field => $transform) {
            if (!isset($row[$field])) {
                continue;
            }
            $row[$field] = match ($transform) {
                // Objects stay objects: `{}` is sent back as `{}`, not `[]`.
                'json_decode' => is_string($row[$field]) ? json_decode($row[$field]) : $row[$field],
                'json_encode' => json_encode($row[$field], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES),
                'uppercase' => is_string($row[$field]) ? mb_strtoupper($row[$field], 'UTF-8') : $row[$field],
                'lowercase' => is_string($row[$field]) ? mb_strtolower($row[$field], 'UTF-8') : $row[$field],
                // An unknown transform changes nothing, as in the original.
                default => $row[$field],
            };
        }
        return $row;
    }

    /** @return array<string, mixed> */
    private static function mapOf(array $config, string $key): array
    {
        $value = $config[$key] ?? [];
        if (!is_array($value) || ($value !== [] && array_is_list($value))) {
            throw new ConfigError("$key must be an object (name -> value)");
        }
        return $value;
    }

    /** @return list<mixed> */
    private static function listOf(array $config, string $key): array
    {
        $value = $config[$key] ?? [];
        if (!is_array($value) || !array_is_list($value)) {
            throw new ConfigError("$key must be a list");
        }
        return $value;
    }
}
