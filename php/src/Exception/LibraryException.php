<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The native library or PHP's FFI extension is missing or disabled; the message says what to change. */
class LibraryException extends TaskManagerException
{
}
