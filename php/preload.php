<?php
// opcache.preload script for PHP-FPM: loads libtaskmanager once into the `taskmanager` FFI
// scope, so requests can use it with the default ffi.enable=preload.
//
//   opcache.enable=1
//   opcache.preload=/path/to/vendor/taskmanager/taskmanager/preload.php
//   opcache.preload_user=www-data
//   ; optional, when the library is not inside the package or a Cargo build tree:
//   ; env[TASKMANAGER_LIB] = /usr/local/lib/libtaskmanager.so   (FPM pool config)

declare(strict_types=1);

require_once __DIR__ . '/src/autoload.php';

\TaskManager\Native::preload();
