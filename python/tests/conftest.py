"""Each test gets its own freshly migrated database on the real server (created and dropped
with the mariadb command-line client, so the package itself stays standard-library only)."""

import os
import subprocess
import uuid

import pytest

import taskmanager

HOST = os.environ.get("TASKMANAGER_TEST_HOST", "127.0.0.1")
PORT = int(os.environ.get("TASKMANAGER_TEST_PORT", "3306"))
USER = os.environ.get("TASKMANAGER_TEST_USER", "taskmanager_test")
PASS = os.environ.get("TASKMANAGER_TEST_PASS", "")


def sql(statement: str, database: str = "") -> str:
    env = dict(os.environ, MYSQL_PWD=PASS)
    cmd = ["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER, "-N", "-B", "-e", statement]
    if database:
        cmd.append(database)
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def config(database: str, **extra):
    return {"db_host": HOST, "db_port": PORT, "db_user": USER, "db_pass": PASS, "db_name": database,
            "pool_max_connections": 8, **extra}


@pytest.fixture
def db_name():
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
