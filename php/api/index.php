<?php
// The HTTP API of the original TaskManager, served on the library (see php/api/README.md).
//
//   php -d ffi.enable=1 -S 127.0.0.1:8080 php/api/index.php     (this file is the router)
//   Apache + PHP-FPM: .htaccess sends every request here; ffi.preload loads the library.

declare(strict_types=1);

require __DIR__ . '/../src/autoload.php';
spl_autoload_register(static function (string $class): void {
    $prefix = 'TaskManager\\Api\\';
    if (strncmp($class, $prefix, strlen($prefix)) === 0) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

// Errors go to the log, never into a response (they may quote SQL or settings).
ini_set('display_errors', '0');

$server = TaskManager\Api\Server::fromEnvironment(__DIR__);
$server->handle(TaskManager\Api\Request::fromGlobals($server->bodyLimit()))->send();
