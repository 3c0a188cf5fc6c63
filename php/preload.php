<?php
// opcache.preload script: loads libtaskmanager once into the `taskmanager` FFI scope, so
// requests can use it with the default ffi.enable=preload. PHP refuses FFI::load() together
// with opcache.preload_user (needed when PHP starts as root, as PHP-FPM's master usually
// does); there, use ffi.preload with the header from bin/ffi-preload-header instead.
//
//   opcache.enable=1
//   opcache.preload=/path/to/vendor/taskmanager/taskmanager/preload.php
//   opcache.preload_user=www-data
//   ; optional, when the library is not inside the package or a Cargo build tree:
//   ; env[TASKMANAGER_LIB] = /usr/local/lib/libtaskmanager.so   (FPM pool config)

declare(strict_types=1);

require_once __DIR__ . '/src/autoload.php';

\TaskManager\Native::preload();
