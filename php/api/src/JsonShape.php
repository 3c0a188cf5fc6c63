<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * The PHP binding decodes the library's JSON into arrays, where `{}` and `[]` are the same
 * empty array; sent back as is, an empty object would reach clients as `[]`. This puts the
 * objects back where the shape is known.
 */
final class JsonShape
{
    /** JSON Schema keywords whose value is an object of subschemas. */
    private const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];

    /** JSON Schema keywords whose value is one subschema (an object, or a boolean). */
    private const SUBSCHEMAS = [
        'additionalProperties', 'additionalItems', 'items', 'contains', 'not', 'if', 'then', 'else',
        'propertyNames', 'unevaluatedProperties', 'unevaluatedItems',
    ];

    /** A top-level value that came from `{}` (params, a schema): an object again. */
    public static function object(mixed $value): mixed
    {
        return $value === [] ? new \stdClass() : $value;
    }

    /**
     * A JSON Schema with its objects restored: the schema itself, the values of `properties`
     * and the like, and every subschema are objects, so an empty array in those places was
     * `{}` (an empty array is not a schema).
     */
    public static function schema(mixed $schema): mixed
    {
        if ($schema === []) {
            return new \stdClass();
        }
        if (!is_array($schema) || array_is_list($schema)) {
            return $schema;
        }
        foreach ($schema as $keyword => $value) {
            if (in_array($keyword, self::SCHEMA_MAPS, true) && is_array($value)) {
                $schema[$keyword] = $value === [] ? new \stdClass() : array_map([self::class, 'schema'], $value);
            } elseif (in_array($keyword, self::SUBSCHEMAS, true)) {
                $schema[$keyword] = self::schema($value);
            } elseif (in_array($keyword, ['allOf', 'anyOf', 'oneOf', 'prefixItems'], true) && is_array($value)) {
                $schema[$keyword] = array_map([self::class, 'schema'], $value);
            }
        }
        return $schema;
    }
}
