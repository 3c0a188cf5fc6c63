<?php

declare(strict_types=1);

namespace TaskManager;

use FFI;
use FFI\CData;
use TaskManager\Exception\LibraryException;
use TaskManager\Exception\TaskManagerException;

/**
 * The one place that talks to libtaskmanager through FFI: loading it, turning returned error
 * pointers into exceptions, and copying (then freeing) every string the library returns.
 *
 * Loading order: the `taskmanager` FFI scope when opcache.preload set it up (PHP-FPM), else
 * FFI::cdef() with the declaration file next to this class and the first library found in:
 * the TASKMANAGER_LIB environment variable or constant, lib/ in this package, then the Cargo
 * build directories of a source checkout.
 */
final class Native
{
    public const SCOPE = 'taskmanager';

    private static ?FFI $ffi = null;

    public static function ffi(): FFI
    {
        return self::$ffi ??= self::load();
    }

    /** The declarations PHP's FFI reads: the C header without preprocessor lines. */
    public static function declarationFile(): string
    {
        return __DIR__ . '/taskmanager.ffi.h';
    }

    /**
     * The declarations with FFI_SCOPE and FFI_LIB set, for `ffi.preload` (PHP-FPM):
     * `php bin/ffi-preload-header > /etc/php/taskmanager.h`, then `ffi.preload=/etc/php/taskmanager.h`.
     */
    public static function preloadHeader(): string
    {
        return sprintf(
            "#define FFI_SCOPE \"%s\"\n#define FFI_LIB \"%s\"\n%s",
            self::SCOPE,
            self::libraryPath(),
            file_get_contents(self::declarationFile())
        );
    }

    /**
     * For opcache.preload (see preload.php) when PHP does not run as root: loads the library
     * into the `taskmanager` scope. (Running as root needs opcache.preload_user, with which PHP
     * refuses FFI::load(); use ffi.preload with preloadHeader() there.)
     */
    public static function preload(): void
    {
        self::checkExtension();
        // FFI::load() wants a file. A name only this call knows (tempnam creates it, mode 0600,
        // failing if it exists) and removed at once: on shared hosting another account cannot
        // plant the file or a link in its place, and nothing is left behind to trust later.
        $file = tempnam(sys_get_temp_dir(), 'taskmanager-');
        if ($file === false) {
            throw new LibraryException('cannot create a temporary file for the FFI header in ' . sys_get_temp_dir(), Code::CONFIG);
        }
        try {
            file_put_contents($file, self::preloadHeader());
            FFI::load($file);
        } finally {
            unlink($file);
        }
    }

    /** Where the library is looked for, in order. */
    public static function candidatePaths(): array
    {
        $paths = [];
        $override = getenv('TASKMANAGER_LIB') ?: (defined('TASKMANAGER_LIB') ? (string) constant('TASKMANAGER_LIB') : '');
        if ($override !== '') {
            $paths[] = $override;
        }
        $root = dirname(__DIR__);
        $paths[] = $root . '/lib/libtaskmanager.so';
        $paths[] = dirname($root) . '/target/release/libtaskmanager.so';
        $paths[] = dirname($root) . '/target/debug/libtaskmanager.so';
        foreach (self::loaderDirectories() as $directory) {
            $paths[] = $directory . '/libtaskmanager.so';
        }
        return $paths;
    }

    /** Directories the system loader searches, where `scripts/install` puts the library. */
    private static function loaderDirectories(): array
    {
        $dirs = array_values(array_filter(explode(':', (string) getenv('LD_LIBRARY_PATH'))));
        $machine = php_uname('m');
        return [...$dirs, '/usr/local/lib', '/usr/local/lib64', "/usr/lib/$machine-linux-gnu", '/usr/lib64', '/usr/lib'];
    }

    public static function libraryPath(): string
    {
        $tried = self::candidatePaths();
        foreach ($tried as $path) {
            if (is_file($path)) {
                return realpath($path) ?: $path;
            }
        }
        throw new LibraryException(
            "libtaskmanager.so was not found. Tried:\n  " . implode("\n  ", $tried)
            . "\nInstall it with `scripts/install /usr/local` (or build it with `cargo build --release`), "
            . "or set TASKMANAGER_LIB to its absolute path.",
            Code::CONFIG
        );
    }

    private static function checkExtension(): void
    {
        if (!extension_loaded('ffi')) {
            throw new LibraryException(
                'PHP\'s FFI extension is not loaded: install a PHP build with FFI (Debian: php8.2-cli) '
                . 'and make sure extension=ffi is enabled in php.ini.',
                Code::CONFIG
            );
        }
    }

    private static function load(): FFI
    {
        self::checkExtension();
        try {
            return FFI::scope(self::SCOPE);
        } catch (\Throwable) {
            // Not preloaded: fall back to loading it here.
        }
        $setting = strtolower((string) ini_get('ffi.enable'));
        if (!in_array($setting, ['1', 'true', 'on'], true) && !($setting === 'preload' && PHP_SAPI === 'cli')) {
            throw new LibraryException(
                "ffi.enable is '$setting', so FFI may only be used from preloaded code here. Either preload "
                . 'the library (recommended for PHP-FPM): `php ' . dirname(__DIR__) . '/bin/ffi-preload-header '
                . '> /etc/php/taskmanager.h` and set ffi.preload=/etc/php/taskmanager.h in php.ini; '
                . 'or set ffi.enable=true.',
                Code::CONFIG
            );
        }
        $declarations = file_get_contents(self::declarationFile());
        $library = self::libraryPath();
        try {
            return FFI::cdef($declarations, $library);
        } catch (\FFI\Exception $e) {
            throw new LibraryException("cannot load $library: {$e->getMessage()}", Code::CONFIG, null, $e);
        }
    }

    /**
     * Throws the matching exception when `$error` is a non-NULL tm_error*, freeing it first.
     */
    public static function check(?CData $error): void
    {
        if ($error === null || FFI::isNull($error)) {
            return;
        }
        $ffi = self::ffi();
        $code = (int) $ffi->tm_error_code($error);
        // FFI returns `const char *` results as PHP strings (copies), or null for NULL.
        $message = (string) $ffi->tm_error_message($error);
        $detailsText = $ffi->tm_error_details($error);
        $details = $detailsText === null ? null : json_decode($detailsText, true);
        $ffi->tm_error_free($error);
        $class = Code::exceptionClass($code);
        throw new $class($message, $code, is_array($details) ? $details : null);
    }

    /** A fresh `char *` slot for an out parameter. */
    public static function outString(): CData
    {
        return self::ffi()->new('char *');
    }

    /** Copies the string in an out slot into PHP, frees the native one, and decodes the JSON. */
    public static function takeJson(CData $slot): mixed
    {
        if (FFI::isNull($slot)) {
            return null;
        }
        return json_decode(self::takeText($slot), true, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
    }

    /** Copies the string in an out slot into PHP and frees the native one. */
    public static function takeText(CData $slot): string
    {
        if (FFI::isNull($slot)) {
            return '';
        }
        try {
            return FFI::string($slot);
        } finally {
            self::ffi()->tm_string_free($slot);
        }
    }

    /** Encodes a PHP value as JSON for the library; an empty PHP array becomes `{}`. */
    public static function json(mixed $value): string
    {
        if ($value === []) {
            return '{}';
        }
        try {
            return json_encode($value, JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION);
        } catch (\JsonException $e) {
            throw new Exception\InvalidArgumentException('cannot encode as JSON: ' . $e->getMessage(), Code::INVALID_ARGUMENT, null, $e);
        }
    }
}
