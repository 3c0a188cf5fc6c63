<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The task type is deactivated and accepts no new tasks (TM_TYPE_INACTIVE). */
class TypeInactiveException extends TaskManagerException
{
}
