<?php

declare(strict_types=1);

namespace TaskManager\Api\DataDriven;

/**
 * The values a row's configuration names: a whole string `{{source.a.b}}` reads that path of
 * the request data (source body, query, path or headers), `{{source.a:default}}` falls back
 * to the text after the colon when the value is missing or null, `{{NOW}}` is the current
 * Unix time; anything else is the literal itself. A resolved value is only ever bound as a
 * parameter, so what a client sends cannot change the SQL text.
 */
final class Template
{
    private const SOURCES = ['body', 'query', 'path', 'headers'];

    /** @param array{body: mixed, query: array<string, mixed>, path: array<string, string>, headers: array<string, string>} $data */
    public function __construct(private readonly array $data)
    {
    }

    public function resolve(mixed $expression): mixed
    {
        if (!is_string($expression) || !str_starts_with($expression, '{{') || !str_ends_with($expression, '}}')) {
            return $expression;
        }
        // One template per value, a path of names: the original matched `{{(.+)}}` greedily,
        // so "{{a}} {{b}}" read a path "a}} {{b" and silently became null.
        if (!preg_match('/^\{\{([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*)(?::(.*))?\}\}$/s', $expression, $m)) {
            throw new ConfigError('malformed template: expected {{source.name}} or {{source.name:default}}');
        }
        $default = isset($m[2]) ? $m[2] : null;
        if ($m[1] === 'NOW') {
            return time();
        }
        $parts = explode('.', $m[1]);
        $source = array_shift($parts);
        if (!in_array($source, self::SOURCES, true)) {
            throw new ConfigError('unknown template source: use body, query, path, headers or NOW');
        }
        $value = $this->data[$source];
        foreach ($parts as $i => $part) {
            // Header names are case-insensitive; the request keeps them in lower case.
            $key = $source === 'headers' && $i === 0 ? strtolower($part) : $part;
            if ($value instanceof \stdClass && property_exists($value, $key)) {
                $value = $value->$key;
            } elseif (is_array($value) && array_key_exists($key, $value)) {
                $value = $value[$key];
            } else {
                return $default;
            }
        }
        return $value ?? $default;
    }

    /**
     * What a validation reads: one named value of a source, the whole name (not a path), as
     * the original looked it up.
     */
    public function value(string $source, string $name): mixed
    {
        $data = $this->data[$source === 'header' ? 'headers' : $source] ?? null;
        if ($source === 'header') {
            $name = strtolower($name);
        }
        if ($data instanceof \stdClass) {
            return property_exists($data, $name) ? $data->$name : null;
        }
        return is_array($data) ? ($data[$name] ?? null) : null;
    }
}
