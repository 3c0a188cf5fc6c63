<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The request conflicts with the current state (TM_CONFLICT). */
class ConflictException extends TaskManagerException
{
}
