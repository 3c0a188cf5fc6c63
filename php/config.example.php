<?php
// TaskManager configuration, in the original config.php form. Copy it to config.php, fill
// in the credentials, and keep config.php:
//   - out of version control (add it to .gitignore),
//   - outside the web root, readable only by the application (chmod 0640),
//   - for an account with only SELECT, INSERT, UPDATE, DELETE (and EXECUTE, for the faster
//     stored-procedure path) on this database; run migrations
//     (TaskManager::getInstance()->migrate()) with an account that may also CREATE, ALTER,
//     INDEX, REFERENCES, CREATE ROUTINE and ALTER ROUTINE.

// Server host; "host:port" also works. Default 'localhost' (a local socket is preferred).
define('DB_HOST', '127.0.0.1');
// Optional: server port (default 3306) or a unix socket path instead of host and port.
// define('DB_PORT', 3306);
// define('DB_SOCKET', '/run/mysqld/mysqld.sock');
// Database holding task_types, tasks and task_history.
define('DB_NAME', 'taskmanager');
// Application account and its password. The password never appears in any error message.
define('DB_USER', 'taskmanager');
define('DB_PASS', 'change-me');
// utf8mb4 is always used (emoji and every script round-trip); 'utf8' is accepted for old configs.
define('DB_CHARSET', 'utf8mb4');
// Seconds a claimed task stays leased before another worker may take it over (default 300).
// Long tasks should heartbeat() rather than raise this.
define('TASK_CLAIM_TIMEOUT', 300);
// Attempts before a task is marked failed for good (default 3); per task: enqueue(..., ['max_attempts' => n]).
define('MAX_TASK_ATTEMPTS', 3);
// Record every transition in task_history (default true); turn off for the highest throughput.
define('ENABLE_TASK_HISTORY', true);
// Validate params against the type's JSON Schema on enqueue (default true).
define('ENABLE_SCHEMA_VALIDATION', true);
// Optional: absolute path of libtaskmanager.so when it is not in this package's lib/ directory.
// define('TASKMANAGER_LIB', '/usr/local/lib/libtaskmanager.so');

// --- The HTTP API (php/api) only --------------------------------------------------------
// define('API_KEY', 'a long random string');          // '' turns authentication off
// define('DASHBOARD_PASSWORD', 'another long one');   // then the API key does not open /dashboard
// Writable by PHP, outside the web root: rate-limit counters, dashboard sessions and their
// signing key, security.log.
// define('STATE_DIR', '/var/lib/taskmanager-api');
// Your reverse proxies: only requests from these may say who the client is (X-Forwarded-For).
// define('TRUSTED_PROXIES', '10.0.0.1, 10.0.1.0/24');
// The original's security settings, unchanged (see php/api/README.md):
// define('IP_BLACKLIST_ENABLED', true);  define('IP_BLACKLIST', '203.0.113.7, 198.51.100.0/24');
// define('IP_WHITELIST_ENABLED', true);  define('IP_WHITELIST', '10.0.0.5');
// define('MAX_REQUEST_SIZE', 1048576);   // bytes; default 2 MB
// define('RATE_LIMIT_ENABLED', true);    define('RATE_LIMIT_MAX_REQUESTS', 100);  define('RATE_LIMIT_TIME_WINDOW', 60);
// define('ENABLE_SECURITY_HEADERS', true);
