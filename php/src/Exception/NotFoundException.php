<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** No such task or task type (TM_NOT_FOUND). */
class NotFoundException extends TaskManagerException
{
}
