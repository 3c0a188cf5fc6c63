<?php
// PSR-4 autoloader for use without Composer (Composer users get the same from composer.json).

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'TaskManager\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
