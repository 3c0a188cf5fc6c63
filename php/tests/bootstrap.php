<?php
// PHPUnit bootstrap: the package autoloader and the test database settings that tests/run
// exports (TM_PHP_TEST_DB, TM_PHP_EMPTY_DB, TASKMANAGER_TEST_HOST/_PORT/_USER/_PASS).

declare(strict_types=1);

require_once __DIR__ . '/../src/autoload.php';
require_once __DIR__ . '/TestCase.php';
