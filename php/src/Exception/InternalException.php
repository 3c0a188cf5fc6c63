<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** A bug inside the library, caught before it could harm the process (TM_PANIC). */
class InternalException extends TaskManagerException
{
}
