<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The parameter schema is not a valid JSON Schema (TM_INVALID_SCHEMA). */
class InvalidSchemaException extends TaskManagerException
{
}
