<?php

declare(strict_types=1);

namespace TaskManager\Api;

/**
 * Flow control over HTTP, shared by the API's routes and the dashboard's calls: the pause and
 * limits bodies checked field by field (a bad one is a 400 that names it, in the API's words;
 * an unknown field is refused, so a misspelt `until` cannot pause a type for good), the
 * claim's `wait_seconds`, and a type's flow state in the API's time format.
 */
final class Flow
{
    /** The library's longest wait for a claim, in seconds. */
    public const WAIT_MAX = 60;

    /** The longest a claim waits over HTTP unless CLAIM_MAX_WAIT_SECONDS says otherwise. */
    public const DEFAULT_WAIT_CAP = 20;

    /**
     * The pause options from a body: `until` (optional), a UTC time in RFC 3339
     * (`2026-12-24T18:00:00Z`) or in the API's own format (`2026-12-24 18:00:00`).
     *
     * @return array{until?: string}
     */
    public static function pauseOptions(\stdClass $body): array
    {
        self::onlyFields($body, ['until']);
        if (!isset($body->until)) {
            return [];
        }
        if (!is_string($body->until) || $body->until === '') {
            throw HttpError::badRequest('until must be a UTC time such as "2026-12-24T18:00:00Z"');
        }
        $until = $body->until;
        if (preg_match('/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?$/', $until)) {
            $until = str_replace(' ', 'T', $until) . 'Z';
        }
        return ['until' => $until];
    }

    /**
     * The limits from a body: `max_running` (an integer, or null to remove it) and `rate`
     * (`{"limit", "per_seconds", "burst"}`, or null to remove it). A field left out keeps its
     * value. Unknown fields are refused here; the values' ranges are the library's to check
     * (its message names the field, and stays the one rule every binding applies).
     *
     * @return array<string, mixed>
     */
    public static function limits(\stdClass $body): array
    {
        self::onlyFields($body, ['max_running', 'rate']);
        $limits = [];
        if (property_exists($body, 'max_running')) {
            $limits['max_running'] = self::digits($body->max_running);
        }
        if (property_exists($body, 'rate')) {
            $rate = $body->rate;
            if ($rate === null) {
                $limits['rate'] = null;
            } elseif (!$rate instanceof \stdClass) {
                throw HttpError::badRequest('rate must be an object {"limit", "per_seconds", "burst"} or null');
            } else {
                self::onlyFields($rate, ['limit', 'per_seconds', 'burst'], 'rate.');
                $limits['rate'] = (object) array_map(self::digits(...), get_object_vars($rate));
            }
        }
        return $limits;
    }

    /**
     * How long a claim may wait: `wait_seconds` (a number from 0 to 60), held to `$cap`, the
     * longest this server lets a request hold a PHP worker. Null when not asked for.
     */
    public static function waitSeconds(\stdClass $body, float $cap): ?float
    {
        if (!isset($body->wait_seconds)) {
            return null;
        }
        $wait = $body->wait_seconds;
        if (is_string($wait) && is_numeric($wait)) {
            $wait = (float) $wait;
        }
        if ((!is_int($wait) && !is_float($wait)) || !is_finite((float) $wait) || $wait < 0 || $wait > self::WAIT_MAX) {
            throw HttpError::badRequest('wait_seconds must be a number of seconds from 0 to ' . self::WAIT_MAX);
        }
        return min((float) $wait, $cap);
    }

    /**
     * The cap on a claim's wait: the setting (CLAIM_MAX_WAIT_SECONDS, default 20), never more
     * than the library's 60 seconds nor than PHP's max_execution_time when one is set.
     */
    public static function waitCap(?float $setting): float
    {
        $cap = min(max(0.0, $setting ?? self::DEFAULT_WAIT_CAP), (float) self::WAIT_MAX);
        $limit = (int) ini_get('max_execution_time');
        return $limit > 0 ? min($cap, (float) $limit) : $cap;
    }

    /**
     * A type's flow state as the API shows it: times as "YYYY-MM-DD HH:MM:SS" UTC.
     *
     * @param array<string, mixed> $type the library's type
     * @return array{paused: bool, paused_until: ?string, max_running: ?int, rate: ?array}
     */
    public static function state(array $type): array
    {
        return [
            'paused' => (bool) ($type['paused'] ?? false),
            'paused_until' => self::time($type['paused_until'] ?? null),
            'max_running' => $type['max_running'] ?? null,
            'rate' => $type['rate'] ?? null,
        ];
    }

    /** "2024-01-01T10:00:00.000000Z" -> "2024-01-01 10:00:00" (UTC), as the API shows times. */
    public static function time(?string $iso): ?string
    {
        return $iso === null ? null : str_replace('T', ' ', substr($iso, 0, 19));
    }

    /** @param list<string> $allowed */
    private static function onlyFields(\stdClass $body, array $allowed, string $prefix = ''): void
    {
        foreach (array_keys(get_object_vars($body)) as $field) {
            if (!in_array($field, $allowed, true)) {
                throw HttpError::badRequest("Unknown field: $prefix$field (allowed: " . implode(', ', $allowed) . ')');
            }
        }
    }

    /** A number given as digits in a string, as the integer it spells; any other value as it is. */
    private static function digits(mixed $value): mixed
    {
        return is_string($value) && preg_match('/^-?\d{1,10}$/', $value) ? (int) $value : $value;
    }
}
