"""A rolling deploy between the previous release and this one, each release in a process of its
own (its library and its Python binding), on databases of the real server. See ./run."""

import argparse
import json
import os
import subprocess
import sys
import uuid

HOST = os.environ.get("TASKMANAGER_TEST_HOST", "127.0.0.1")
PORT = int(os.environ.get("TASKMANAGER_TEST_PORT", "3306"))
USER = os.environ.get("TASKMANAGER_TEST_USER", "taskmanager_test")
PASS = os.environ.get("TASKMANAGER_TEST_PASS", "")


def sql(statement, database=""):
    env = dict(os.environ, MYSQL_PWD=PASS)
    cmd = ["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER, "-N", "-B", "-e", statement]
    if database:
        cmd.append(database)
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------------------------
# steps, run inside a process of one release


def client(database):
    import taskmanager

    return taskmanager.Client({"db_host": HOST, "db_port": PORT, "db_user": USER, "db_pass": PASS,
                               "db_name": database})


def step_migrate(database, to=None):
    """Migrates fully, or (``to``, this release only) up to that version: during a rolling
    deploy, to the version this release runs on while the previous one still runs."""
    c = client(database)
    if to is None:
        c.migrate()
    else:
        c.migrate(to=int(to))
    return {"version": int(sql("SELECT MAX(version) FROM tm_schema_migrations", database))}


def step_produce(database, tag):
    """Registers the type (the same definition from both releases) and enqueues 6 tasks."""
    c = client(database)
    c.register_type("roll", {"type": "object"}, version="1")
    return {"ids": [c.enqueue("roll", {"n": n, "by": tag})["id"] for n in range(6)]}


def step_work(database, tag):
    """Runs the hot path: claim + complete, complete_and_claim, fail with retry, then drains."""
    c = client(database)
    done = []
    first = c.claim(tag, limit=1)
    if first:
        task = first[0]
        c.complete(task.id, task.lease_token, {"by": tag})
        done.append(task.id)
    nxt = c.claim(tag, limit=1)
    while nxt:
        task = nxt[0]
        _, nxt = c.complete_and_claim(task.id, task.lease_token, {"by": tag}, tag)
        done.append(task.id)
        if len(done) == 3 and nxt:
            # A failure with a retry at once: the task comes back and is drained below.
            failed = nxt[0]
            c.fail(failed.id, failed.lease_token, "rolling", retry_in_seconds=0)
            nxt = c.claim(tag, limit=1)
    return {"done": done}


def step_enqueue_expecting_refusal(database):
    import taskmanager

    c = client(database)
    try:
        c.enqueue("roll", {"n": 99})
    except taskmanager.TaskManagerError as e:
        return {"code": e.code, "message": str(e)}
    return {"code": 0}


STEPS = {"migrate": step_migrate, "produce": step_produce, "work": step_work,
         "enqueue_expecting_refusal": step_enqueue_expecting_refusal}


# ---------------------------------------------------------------------------------------------
# the scenario


class Release:
    def __init__(self, name, lib, python_dir):
        self.name, self.lib, self.python_dir = name, lib, python_dir

    def run(self, step, database, *args):
        env = dict(os.environ, TASKMANAGER_LIB=self.lib, PYTHONPATH=self.python_dir)
        out = subprocess.run([sys.executable, __file__, "--step", step, "--db", database, *args],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"rolling: {self.name} release, step {step}: {out.stderr.strip()}")
        return json.loads(out.stdout)


def calls():
    return int(sql("SHOW GLOBAL STATUS LIKE 'Com_call_procedure'").split()[1])


def check(condition, what):
    if not condition:
        raise SystemExit(f"rolling: FAILED: {what}")
    print(f"ok: {what}")


def every_task_completed_once(database, expected):
    rows = sql("SELECT COUNT(*), SUM(status = 'completed') FROM tasks", database).split()
    check(rows == [str(expected), str(expected)], f"all {expected} tasks completed ({rows})")
    doubled = sql("SELECT COUNT(*) FROM (SELECT task_id FROM task_history WHERE status_change = "
                  "'completed' GROUP BY task_id HAVING COUNT(*) <> 1) AS d", database)
    check(doubled == "0", "each task has exactly one completed history row")


def scenario(old, new):
    database = "tm_roll_" + uuid.uuid4().hex[:10]
    sql(f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        print(f"== a database migrated by this release serves both ({database})")
        check(new.run("migrate", database, "11")["version"] == 11,
              "this release migrates to the version it runs on (11: the type gate and the "
              "procedures' generation 11), keeping the previous release's procedures")
        kept = sql("SELECT GROUP_CONCAT(ROUTINE_NAME ORDER BY ROUTINE_NAME) FROM "
                   "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() AND "
                   "ROUTINE_NAME LIKE 'tm6!_%' ESCAPE '!'", database)
        check(kept == "tm6_claim_next,tm6_complete,tm6_complete_and_claim,tm6_enqueue",
              f"the previous release's procedures are kept ({kept})")
        before = calls()
        old.run("produce", database, "old")
        old_done = old.run("work", database, "old")["done"]
        check(calls() > before, "the previous release ran its stored procedures "
                                "(Com_call_procedure grew)")
        new.run("produce", database, "new")
        new_done = new.run("work", database, "new")["done"]
        old.run("produce", database, "old2")
        # Both releases drain the same queue, one after the other and then again.
        more = old.run("work", database, "old")["done"] + new.run("work", database, "new")["done"]
        every_task_completed_once(database, 18)
        check(len(set(old_done + new_done + more)) == 18, "18 distinct tasks done, none twice")
        check(new.run("migrate", database)["version"] >= 11, "the plain migrate has nothing left")
        new.run("produce", database, "new2")
        new.run("work", database, "new")
        every_task_completed_once(database, 24)
    finally:
        sql(f"DROP DATABASE IF EXISTS {database}")

    database = "tm_roll_" + uuid.uuid4().hex[:10]
    sql(f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        print(f"== a database at the previous schema version ({database})")
        old_version = old.run("migrate", database)["version"]
        old.run("produce", database, "old")
        refused = new.run("enqueue_expecting_refusal", database)
        check(refused["code"] == 304, f"this release refuses it with TM_SCHEMA_OUTDATED: {refused}")
        check(new.run("migrate", database, "11")["version"] > old_version,
              "this release migrates it (to 11: the previous release still runs)")
        old.run("work", database, "old")
        every_task_completed_once(database, 6)
    finally:
        sql(f"DROP DATABASE IF EXISTS {database}")
    print("rolling deploy: all checks passed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--step")
    parser.add_argument("--db")
    parser.add_argument("--old-lib")
    parser.add_argument("--old-python")
    parser.add_argument("--new-lib")
    parser.add_argument("--new-python")
    args, rest = parser.parse_known_args()
    if args.step:
        print(json.dumps(STEPS[args.step](args.db, *rest)))
        return
    scenario(Release("previous", args.old_lib, args.old_python),
             Release("this", args.new_lib, args.new_python))


if __name__ == "__main__":
    main()
