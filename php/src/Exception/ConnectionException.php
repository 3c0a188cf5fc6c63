<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The database could not be reached; nothing was committed. Retry later (TM_CONNECTION). */
class ConnectionException extends TaskManagerException
{
}
