<?php

declare(strict_types=1);

namespace TaskManager;

/**
 * Thrown into a Worker handler that runs past --timeout. An \Error rather than an \Exception
 * so that a handler's `catch (\Exception $e)` does not swallow it; one that swallows it anyway
 * is stopped by exiting the process shortly after.
 */
final class HandlerTimeout extends \Error
{
}
