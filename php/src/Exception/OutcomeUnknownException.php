<?php

declare(strict_types=1);

namespace TaskManager\Exception;

/** The connection broke during commit; repeat the same call, it is idempotent (TM_OUTCOME_UNKNOWN). */
class OutcomeUnknownException extends ConnectionException
{
}
