<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** Incomplete or invalid settings, or credentials the server refused (TM_CONFIG). */
class ConfigException extends TaskManagerException
{
}
