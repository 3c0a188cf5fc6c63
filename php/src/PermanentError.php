<?php

declare(strict_types=1);

namespace TaskManager;

/**
 * Throw from a Worker handler when retrying cannot help: the task fails for good at once,
 * whatever attempts it has left.
 */
class PermanentError extends \RuntimeException
{
}
