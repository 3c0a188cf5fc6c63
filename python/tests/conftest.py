"""Each test gets its own freshly migrated database on the real server (created and dropped
with the mariadb command-line client, so the package itself stays standard-library only).

With TASKMANAGER_TEST_ENGINE=sqlite a test's database is a SQLite file in its own temporary
directory instead (db_path), and python/tests/run leaves out, by name, the tests about the
server alone. ``sql``, ``shift_time`` and ``set_time`` work on either."""

import os
import sqlite3
import subprocess
import time
import uuid
from contextlib import closing

import pytest

import taskmanager

HOST = os.environ.get("TASKMANAGER_TEST_HOST", "127.0.0.1")
PORT = int(os.environ.get("TASKMANAGER_TEST_PORT", "3306"))
USER = os.environ.get("TASKMANAGER_TEST_USER", "taskmanager_test")
PASS = os.environ.get("TASKMANAGER_TEST_PASS", "")
ENGINE = os.environ.get("TASKMANAGER_TEST_ENGINE", "mysql")
if ENGINE not in ("mysql", "sqlite"):
    raise RuntimeError(f"TASKMANAGER_TEST_ENGINE must be mysql or sqlite, got {ENGINE!r}")
SQLITE = ENGINE == "sqlite"


def sql(statement: str, database: str = "") -> str:
    """Runs ``statement`` on ``database`` (the server's, or a SQLite file); the rows as the
    mariadb client prints them with -N -B (tab-separated lines)."""
    if SQLITE:
        assert database, "on SQLite a statement runs on a test's file"
        with closing(sqlite3.connect(database, timeout=30)) as conn:
            rows = conn.execute(statement).fetchall()
            conn.commit()
        return "".join("\t".join(str(v) for v in row) + "\n" for row in rows)
    env = dict(os.environ, MYSQL_PWD=PASS)
    cmd = ["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER, "-N", "-B", "-e", statement]
    if database:
        cmd.append(database)
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def _micros(seconds: float) -> int:
    return round(seconds * 1_000_000)


def shift_time(database: str, column: str, seconds: float, where: str) -> None:
    """Moves the time ``column`` of the tasks matching ``where`` by ``seconds`` (back when
    negative), in the engine's own terms (DATETIME(6); INTEGER microseconds)."""
    change = (f"{column} + {_micros(seconds)}" if SQLITE
              else f"{column} + INTERVAL {_micros(seconds)} MICROSECOND")
    sql(f"UPDATE tasks SET {column} = {change} WHERE {where}", database)


def set_time(database: str, column: str, offset: float, where: str) -> None:
    """Sets the time ``column`` of the tasks matching ``where`` to now plus ``offset``
    seconds, now being the engine's clock (the server's NOW(6); the host's, as the library
    reads it for a file)."""
    value = (str(time.time_ns() // 1000 + _micros(offset)) if SQLITE
             else f"NOW(6) + INTERVAL {_micros(offset)} MICROSECOND")
    sql(f"UPDATE tasks SET {column} = {value} WHERE {where}", database)


def config(database: str, **extra):
    if SQLITE:
        return {"db_path": database, **extra}
    return {"db_host": HOST, "db_port": PORT, "db_user": USER, "db_pass": PASS, "db_name": database,
            "pool_max_connections": 8, **extra}


def database_url(database: str) -> str:
    """``database`` as TASKMANAGER_DATABASE_URL."""
    if SQLITE:
        return f"sqlite://{database}"  # an absolute path: sqlite:///tmp/...
    return f"mysql://{USER}:{PASS}@{HOST}:{PORT}/{database}"


@pytest.fixture
def db_name(tmp_path):
    if SQLITE:
        yield str(tmp_path / "queue.db")
        return
    name = "tm_py_" + uuid.uuid4().hex[:12]
    sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield name
    sql(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def client(db_name):
    with taskmanager.Client(config(db_name)) as c:
        c.migrate()
        c.register_type("py.job", {"type": "object"})
        yield c
