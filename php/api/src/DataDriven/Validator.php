<?php

declare(strict_types=1);

namespace TaskManager\Api\DataDriven;

use TaskManager\Api\HttpError;

/**
 * The rows of `api_validations` for one endpoint, checked as the original checked them:
 * `required` (null or '' fails, with the row's error_message or "Field 'x' is required"),
 * then, for a present value, `type`, `minLength` / `maxLength` (strings) and `minimum` /
 * `maximum` (numbers). Every failure is collected; any failure is 400 `Validation failed`
 * with the list.
 */
final class Validator
{
    /** @param list<array<string, mixed>> $rows */
    public static function check(array $rows, Template $request): void
    {
        $errors = [];
        foreach ($rows as $row) {
            $name = (string) $row['param_name'];
            $rules = json_decode((string) $row['validation_rules_json'], true);
            if (!is_array($rules)) {
                throw new ConfigError("validation rules for '$name' are not a JSON object");
            }
            $value = $request->value((string) ($row['param_source'] ?? 'body'), $name);
            $absent = $value === null || $value === '';
            if (!empty($rules['required']) && $absent) {
                $message = (string) ($row['error_message'] ?? '');
                $errors[] = $message !== '' ? $message : "Field '$name' is required";
                continue;
            }
            if ($absent) {
                continue;
            }
            if (isset($rules['type']) && self::type($value) !== $rules['type']) {
                $errors[] = "Field '$name' must be of type " . self::text($rules['type']);
            }
            if (is_string($value)) {
                // Characters, not bytes: the original's strlen counted "é" as two.
                $length = mb_strlen($value, 'UTF-8');
                if (isset($rules['minLength']) && is_numeric($rules['minLength']) && $length < $rules['minLength']) {
                    $errors[] = "Field '$name' must be at least {$rules['minLength']} characters";
                }
                if (isset($rules['maxLength']) && is_numeric($rules['maxLength']) && $length > $rules['maxLength']) {
                    $errors[] = "Field '$name' must be at most {$rules['maxLength']} characters";
                }
            }
            if (is_int($value) || is_float($value) || (is_string($value) && is_numeric($value))) {
                if (isset($rules['minimum']) && is_numeric($rules['minimum']) && $value + 0 < $rules['minimum']) {
                    $errors[] = "Field '$name' must be at least {$rules['minimum']}";
                }
                if (isset($rules['maximum']) && is_numeric($rules['maximum']) && $value + 0 > $rules['maximum']) {
                    $errors[] = "Field '$name' must be at most {$rules['maximum']}";
                }
            }
        }
        if ($errors !== []) {
            throw HttpError::badRequest('Validation failed', $errors);
        }
    }

    /** The type name as PHP sees a decoded JSON value: a query-string number is a string. */
    private static function type(mixed $value): string
    {
        return match (true) {
            is_string($value) => 'string',
            is_int($value) => 'integer',
            is_float($value) => 'number',
            is_bool($value) => 'boolean',
            $value instanceof \stdClass => 'object',
            is_array($value) => array_is_list($value) ? 'array' : 'object',
            default => 'unknown',
        };
    }

    private static function text(mixed $value): string
    {
        return is_scalar($value) ? (string) $value : (string) json_encode($value);
    }
}
