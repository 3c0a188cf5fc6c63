<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The server lacks FOR UPDATE SKIP LOCKED: use MariaDB 10.6+ or MySQL 8.0.1+ (TM_UNSUPPORTED_SERVER). */
class UnsupportedServerException extends TaskManagerException
{
}
