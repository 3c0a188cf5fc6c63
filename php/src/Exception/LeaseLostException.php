<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The lease token no longer owns the task; nothing was changed (TM_LEASE_LOST). Drop the result. */
class LeaseLostException extends TaskManagerException
{
}
