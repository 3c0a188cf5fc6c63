<?php

declare(strict_types=1);

namespace TaskManager\Api\DataDriven;

/**
 * A published endpoint's row that cannot be served as written (an identifier the checks
 * refuse, a malformed template, an unknown action). The operator's mistake, not the
 * client's: it answers 500, naming the rule, before any SQL runs.
 */
final class ConfigError extends \RuntimeException
{
}
