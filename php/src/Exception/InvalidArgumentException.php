<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** A malformed argument: NULL, bad UTF-8, bad JSON, wrong shape, out of range, or too large (TM_NULL_PARAMETER, TM_INVALID_ARGUMENT, TM_PAYLOAD_TOO_LARGE). */
class InvalidArgumentException extends TaskManagerException
{
}
