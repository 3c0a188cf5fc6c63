"""The HTTP suite: PHP's built-in server runs php/api/index.php on a free port against a fresh,
migrated database, configured by an original-style config.php; tests talk to it over real
HTTP (urllib) and look at the database with the mariadb client."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
import taskmanager  # noqa: E402

HOST = os.environ.get("TASKMANAGER_TEST_HOST", "127.0.0.1")
PORT = int(os.environ.get("TASKMANAGER_TEST_PORT", "3306"))
USER = os.environ.get("TASKMANAGER_TEST_USER", "taskmanager_test")
PASS = os.environ.get("TASKMANAGER_TEST_PASS", "")
KEY = "test-key-" + uuid.uuid4().hex[:8]


def sql(statement, database=""):
    env = dict(os.environ, MYSQL_PWD=PASS)
    cmd = ["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER, "-N", "-B", "-e", statement]
    if database:
        cmd.append(database)
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def php_value(value):
    return json.dumps(value) if not isinstance(value, list) else "[" + ", ".join(json.dumps(v) for v in value) + "]"


def original_config(database, **constants):
    """config.php as the original system's deployments have it: constants, nothing else."""
    values = {
        "DB_HOST": HOST, "DB_NAME": database, "DB_USER": USER, "DB_PASS": PASS, "DB_CHARSET": "utf8mb4",
        **QUEUE_CONSTANTS,
    }
    values.update(constants)
    text = config_text(values)
    if PORT != 3306:
        text += f"define('DB_PORT', {PORT});\n"
    return text


QUEUE_CONSTANTS = {
    "TASK_CLAIM_TIMEOUT": 300, "MAX_TASK_ATTEMPTS": 3, "ENABLE_TASK_HISTORY": True,
    "ENABLE_SCHEMA_VALIDATION": True, "API_KEY": KEY,
}


def embedded_config(db_path, **constants):
    """The original's config.php on the embedded engine: DB_PATH (one SQLite file) in place of
    DB_HOST, DB_NAME, DB_USER, DB_PASS and DB_CHARSET; the other constants as before."""
    return config_text({"DB_PATH": str(db_path), **QUEUE_CONSTANTS, **constants})


def config_text(values):
    lines = ["<?php", "// Database configuration", "error_reporting(E_ALL);"]
    for name, value in values.items():
        if value is not None:
            lines.append(f"define('{name}', {php_value(value)});")
    return "\n".join(lines) + "\n"


class Api:
    """One running API server."""

    def __init__(self, base, database, process, log):
        self.base, self.database, self.process, self.log = base, database, process, log

    def call(self, method, path, body=None, key=KEY, headers=None, raw=None):
        """-> (status, headers, parsed JSON body or None)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            all_headers["X-API-Key"] = key
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read()
                return resp.status, resp.headers, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, e.headers, json.loads(text) if text else None

    def raw(self, path):
        """GET without the key, as a browser would: -> (status, headers, text)."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=60) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def ok(self, method, path, body=None, status=200):
        got, _, answer = self.call(method, path, body)
        assert got == status, (got, answer)
        assert answer["success"] is True, answer
        return answer["data"]

    def error(self, method, path, body=None, status=400, **kw):
        got, _, answer = self.call(method, path, body, **kw)
        assert got == status, (got, answer)
        assert answer["success"] is False and answer["error"] == answer["message"], answer
        return answer["error"]

    def sql(self, statement):
        return sql(statement, self.database)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(database, config_text=None, env=None, workers=1):
    tmp = tempfile.mkdtemp(prefix="tm_api_")
    log = Path(tmp) / "server.log"
    full_env = dict(os.environ, **(env or {}))
    if config_text is not None:
        (Path(tmp) / "config.php").write_text(config_text)
        full_env["TASKMANAGER_CONFIG"] = str(Path(tmp) / "config.php")
    if workers > 1:
        full_env["PHP_CLI_SERVER_WORKERS"] = str(workers)
    port = free_port()
    process = subprocess.Popen(
        ["php", "-d", "ffi.enable=1", "-d", "log_errors=1", "-d", f"error_log={log}",
         "-S", f"127.0.0.1:{port}", str(ROOT / "php/api/index.php")],
        env=full_env, stdout=subprocess.DEVNULL, stderr=open(log, "a"),
    )
    api = Api(f"http://127.0.0.1:{port}", database, process, log)
    for _ in range(200):
        try:
            api.call("OPTIONS", "/health")
            return api
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("php -S did not start: " + log.read_text())


def stop_api(api):
    api.process.terminate()
    api.process.wait(timeout=10)


@pytest.fixture
def database():
    name = "tm_http_" + uuid.uuid4().hex[:12]
    sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    with taskmanager.Client({"db_host": HOST, "db_port": PORT, "db_user": USER, "db_pass": PASS,
                             "db_name": name}) as client:
        client.migrate()
    yield name
    sql(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def api(database):
    server = start_api(database, original_config(database))
    yield server
    stop_api(server)


@pytest.fixture
def start(database):
    """Starts more servers (other settings) on the test's database; stops them afterwards."""
    started = []

    def run(config_text=None, env=None, workers=1):
        server = start_api(database, config_text, env, workers)
        started.append(server)
        return server

    yield run
    for server in started:
        stop_api(server)
