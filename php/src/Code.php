<?php

declare(strict_types=1);

namespace TaskManager;

/** The library's stable error codes (`enum tm_code` in the C header). */
final class Code
{
    public const OK = 0;
    public const NULL_PARAMETER = 100;
    public const INVALID_ARGUMENT = 101;
    public const PAYLOAD_TOO_LARGE = 102;
    public const CONFIG = 103;
    public const NOT_FOUND = 200;
    public const TYPE_INACTIVE = 201;
    public const INVALID_SCHEMA = 202;
    public const VALIDATION_FAILED = 203;
    public const LEASE_LOST = 204;
    public const CONFLICT = 205;
    public const CONNECTION = 300;
    public const DATABASE = 301;
    public const OUTCOME_UNKNOWN = 302;
    public const UNSUPPORTED_SERVER = 303;
    public const SCHEMA_OUTDATED = 304;
    public const PANIC = 900;

    /** The exception class for a code; unknown codes map to the base class. */
    public static function exceptionClass(int $code): string
    {
        return match ($code) {
            self::NULL_PARAMETER, self::INVALID_ARGUMENT, self::PAYLOAD_TOO_LARGE => Exception\InvalidArgumentException::class,
            self::CONFIG => Exception\ConfigException::class,
            self::NOT_FOUND => Exception\NotFoundException::class,
            self::TYPE_INACTIVE => Exception\TypeInactiveException::class,
            self::INVALID_SCHEMA => Exception\InvalidSchemaException::class,
            self::VALIDATION_FAILED => Exception\ValidationException::class,
            self::LEASE_LOST => Exception\LeaseLostException::class,
            self::CONFLICT => Exception\ConflictException::class,
            self::CONNECTION => Exception\ConnectionException::class,
            self::OUTCOME_UNKNOWN => Exception\OutcomeUnknownException::class,
            self::DATABASE => Exception\DatabaseException::class,
            self::UNSUPPORTED_SERVER => Exception\UnsupportedServerException::class,
            self::SCHEMA_OUTDATED => Exception\SchemaOutdatedException::class,
            self::PANIC => Exception\InternalException::class,
            default => Exception\TaskManagerException::class,
        };
    }
}
