<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The database schema is older than the library needs: run migrate() (TM_SCHEMA_OUTDATED). */
class SchemaOutdatedException extends TaskManagerException
{
}
