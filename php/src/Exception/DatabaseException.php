<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The database refused a statement; getDetails()['server_code'] has its error number (TM_DATABASE). */
class DatabaseException extends TaskManagerException
{
}
