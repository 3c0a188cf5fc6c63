"""The client against the real library and server: lifecycle, errors, threads, fork, memory."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import taskmanager
from taskmanager import Code
from conftest import SQLITE, config, database_url, set_time, shift_time, sql


def test_unique_window(client, db_name):
    client.register_type("py.nightly", {"type": "object"})
    first = client.enqueue("py.nightly", {"day": 1}, unique_for_seconds=60)
    again = client.enqueue("py.nightly", {"day": 1}, unique_for_seconds=60)
    assert (again["id"], again["deduplicated"]) == (first["id"], True)
    # The window is passed by moving the first task's creation back, not by waiting.
    shift_time(db_name, "created_at", -60, f"id = {first['id']}")
    after = client.enqueue("py.nightly", {"day": 1}, unique_for_seconds=60)
    assert after["deduplicated"] is False and after["id"] != first["id"]
    for bad in (0, -1, 31_536_001, 1.5):
        with pytest.raises(taskmanager.InvalidArgumentError, match="unique_for_seconds"):
            client.enqueue("py.nightly", {"day": 2}, unique_for_seconds=bad)


def test_full_lifecycle(client):
    client.register_type("py.mail", {"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}})
    queued = client.enqueue("py.mail", {"to": "ada@example.com", "note": "Příliš žluťoučký kůň 🐎"}, priority=3)
    assert queued["status"] == "pending" and queued["deduplicated"] is False
    again = client.enqueue("py.mail", {"note": "Příliš žluťoučký kůň 🐎", "to": "ada@example.com"})
    assert again["id"] == queued["id"] and again["deduplicated"] is True

    [task] = client.claim("py-worker", types=["py.mail"], limit=5)
    assert (task.id, task.type, task.attempts, task.max_attempts) == (queued["id"], "py.mail", 1, 3)
    assert task.params["note"] == "Příliš žluťoučký kůň 🐎"
    assert task.heartbeat(progress=30)["progress"] == 30
    assert task.complete({"sent": True})["repeated"] is False
    assert task.complete({"sent": True})["repeated"] is True

    stored = client.get_task(task.id)
    assert stored["status"] == "completed" and stored["result"] == {"sent": True}
    assert [h["status_change"] for h in client.history(task.id)] == ["created", "claimed", "progress", "completed"]
    assert client.stats()["types"]["py.mail"]["completed"] == 1
    assert client.claim("py-worker", types=["py.mail"]) == []


def test_complete_and_claim_finishes_one_task_and_leases_the_next(client):
    client.register_type("py.loop", {"type": "object"})
    first = client.enqueue("py.loop", {"n": 1}, priority=1)["id"]
    second = client.enqueue("py.loop", {"n": 2})["id"]
    [task] = client.claim("py-loop", types=["py.loop"])
    assert task.id == first

    completed, claimed = client.complete_and_claim(task.id, task.lease_token, {"ok": True}, "py-loop", types=["py.loop"])
    assert completed["repeated"] is False
    assert client.get_task(first)["result"] == {"ok": True}
    assert [t.id for t in claimed] == [second] and claimed[0].attempts == 1
    assert client.get_task(second)["status"] == "claimed"

    completed, claimed = client.complete_and_claim(task.id, task.lease_token, {"ok": True}, "py-loop")
    assert completed["repeated"] is True and claimed == []
    with pytest.raises(taskmanager.LeaseLostError):
        client.complete_and_claim(second, "stale.token", None, "py-loop")
    assert client.get_task(second)["status"] == "claimed"


def test_versions_are_text(client):
    assert client.register_type("py.ver", {"type": "object"}, version="2.0.0-rc.1")["version"] == "2.0.0-rc.1"
    assert client.register_type("py.ver", {"type": "array"}, version=3)["version"] == "3"
    with pytest.raises(taskmanager.ConflictError):
        client.register_type("py.ver", {"type": "object"}, version="3")


def test_legacy_callers_finish_by_worker_id_in_their_order(client):
    client.register_type("py.legacy", {"type": "object"})
    low = client.enqueue("py.legacy", {"n": 1}, priority=0)["id"]
    high = client.enqueue("py.legacy", {"n": 2}, priority=5)["id"]
    [task] = client.claim("legacy", types=["py.legacy"], sort_by="priority", sort_order="asc")
    assert task.id == low
    with pytest.raises(taskmanager.LeaseLostError):
        client.complete_as_worker(low, "someone-else", {"x": 1})
    assert client.heartbeat_as_worker(low, "legacy", progress=10)["progress"] == 10
    assert client.complete_as_worker(low, "legacy", {"ok": True})["status"] == "completed"
    [task] = client.claim("legacy", types=["py.legacy"])
    assert task.id == high
    assert client.fail_as_worker(high, "legacy", "boom", retry=False)["status"] == "failed"


def test_prune_and_metrics(client, db_name):
    client.register_type("py.old", {"type": "object"})
    ids = [client.enqueue("py.old", {"n": n})["id"] for n in range(3)]
    for task in client.claim("w", types=["py.old"], limit=2):
        task.complete(True)
    set_time(db_name, "completed_at", -2 * 3600, f"id = {ids[0]}")
    assert client.prune(3600, dry_run=True)["tasks"] == 1
    report = client.prune(3600, batch_size=10)
    assert (report["tasks"], report["done"]) == (1, True) and report["history"] >= 3
    with pytest.raises(taskmanager.NotFoundError):
        client.get_task(ids[0])
    with pytest.raises(taskmanager.InvalidArgumentError):
        client.prune(1, statuses=["pending"])
    text = client.metrics()
    assert 'taskmanager_tasks{type="py.old",status="completed"} 1' in text
    assert 'taskmanager_tasks{type="py.old",status="pending"} 1' in text


def test_fail_retry_release_cancel(client):
    tid = client.enqueue("py.job", {"n": 1}, max_attempts=2)["id"]
    [task] = client.claim("w")
    assert task.fail("flaky", retry_in_seconds=0)["status"] == "pending"
    [task] = client.claim("w")
    assert task.attempts == 2
    assert task.fail("broken")["status"] == "failed"
    assert client.retry(tid)["status"] == "pending"
    [task] = client.claim("w")
    task.release()
    assert client.claim("w")[0].attempts == 1
    assert client.cancel(tid, "not needed")["status"] == "cancelled"
    batch = client.enqueue_batch([{"type": "py.job", "params": {"b": 1}}, {"type": "py.job", "params": {"b": 2}, "options": {"priority": 9}}])
    assert [b["deduplicated"] for b in batch] == [False, False]
    tasks = client.claim("w", limit=5)
    outcomes = client.complete_batch([{"id": t.id, "lease_token": t.lease_token, "result": t.params} for t in tasks])
    assert all(o["ok"] for o in outcomes) and len(outcomes) == 2
    assert len(client.list_tasks(type="py.job", status="completed")) == 2


def test_cancel_and_retry_where_with_a_dry_run(client):
    ids = [e["id"] for e in client.enqueue_batch([{"type": "py.job", "params": {"bulk": n}} for n in range(3)])]
    [claimed] = client.claim("w", sort_by="id")
    dry = client.cancel_where(type="py.job", dry_run=True)
    assert dry["dry_run"] is True and dry["changed"] == ids[::-1] and dry["next_before_id"] is None
    assert client.get_task(ids[1])["status"] == "pending", "a dry run changes nothing"
    done = client.cancel_where(ids=[ids[0], ids[1]], reason="bulk")
    assert done["changed"] == [ids[1], ids[0]] and done["action"] == "cancel"
    assert client.history(claimed.id)[-1]["message"] == "bulk"
    retried = client.retry_where(type="py.job", limit=2)
    assert retried["changed"] == [ids[1]] and retried["next_before_id"] == ids[1]
    assert retried["skipped"] == [{"id": ids[2], "code": "TM_CONFLICT",
                                   "message": f"task {ids[2]} is pending: retry needs a failed or cancelled task"}]
    rest = client.retry_where(type="py.job", before_id=retried["next_before_id"])
    assert rest["changed"] == [ids[0]] and rest["next_before_id"] is None
    with pytest.raises(taskmanager.InvalidArgumentError, match="give task ids"):
        client.cancel_where()


def test_claim_by_type_pattern_and_type_ids(client):
    client.register_type("py.other", {"type": "object"})
    tid = client.enqueue("py.job", {"n": 1})["id"]
    job_id = client.get_type("py.job")["id"]
    assert client.claim("w", type_pattern="py%", type_ids=[client.get_type("py.other")["id"]]) == []
    [task] = client.claim("w", type_pattern="PY_JOB", type_ids=[job_id])
    assert task.id == tid
    with pytest.raises(taskmanager.InvalidArgumentError, match="escape character"):
        client.claim("w", type_pattern="py\\")


def test_every_error_family_has_its_exception(client, db_name):
    client.register_type("py.strict", {"type": "object", "required": ["email"], "properties": {"age": {"type": "integer", "minimum": 0}}})
    cases = [
        (taskmanager.NotFoundError, Code.NOT_FOUND, lambda: client.get_task(987654321)),
        (taskmanager.NotFoundError, Code.NOT_FOUND, lambda: client.enqueue("py.none", {})),
        (taskmanager.InvalidArgumentError, Code.INVALID_ARGUMENT, lambda: client.get_task(0)),
        (taskmanager.InvalidArgumentError, Code.INVALID_ARGUMENT, lambda: client.claim("w", limit=0)),
        (taskmanager.InvalidArgumentError, Code.INVALID_ARGUMENT, lambda: client.claim("w\udcff")),
        (taskmanager.InvalidArgumentError, Code.INVALID_ARGUMENT, lambda: client.claim("w\0x")),
        (taskmanager.InvalidArgumentError, Code.INVALID_ARGUMENT, lambda: client.get_task(2**70)),
        (taskmanager.InvalidArgumentError, Code.INVALID_ARGUMENT, lambda: client.enqueue("py.job", float("nan"))),
        (taskmanager.InvalidArgumentError, Code.PAYLOAD_TOO_LARGE, lambda: client.enqueue("py.job", {"x": "y" * (2 << 20)})),
        (taskmanager.InvalidSchemaError, Code.INVALID_SCHEMA, lambda: client.register_type("py.bad", {"type": 12})),
        (taskmanager.ConflictError, Code.CONFLICT, lambda: client.register_type("py.job", {"type": "array"})),
        (taskmanager.ValidationError, Code.VALIDATION_FAILED, lambda: client.enqueue("py.strict", {"age": -1})),
        (taskmanager.LeaseLostError, Code.LEASE_LOST, lambda: client.complete(client.enqueue("py.job", {"l": 1})["id"], "stale")),
        (taskmanager.ConfigError, Code.CONFIG, lambda: taskmanager.Client(config(db_name, db_nme="typo"))),
    ]
    # Every case runs and every mismatch is reported, so one failure cannot hide the others.
    failures = []
    for number, (cls, code, call) in enumerate(cases):
        try:
            call()
        except taskmanager.TaskManagerError as e:
            if not isinstance(e, cls) or e.code != code:
                failures.append(f"case {number}: expected {cls.__name__}/{code!r}, got {type(e).__name__}/{e.code!r}: {e}")
            elif "Sup3r-Secret" in str(e) + json.dumps(e.details):
                failures.append(f"case {number}: the password appears in the error")
        except Exception as e:  # noqa: BLE001 - any other exception is a failure of the case
            failures.append(f"case {number}: expected {cls.__name__}, got {type(e).__name__}: {e}")
        else:
            failures.append(f"case {number}: expected {cls.__name__}, nothing was raised")
    assert not failures, "\n".join(failures)

    with pytest.raises(taskmanager.ValidationError) as info:
        client.enqueue("py.strict", {"age": -1})
    assert sorted(v["path"] for v in info.value.violations) == ["/", "/age"]

    client.set_type_active("py.job", False)
    with pytest.raises(taskmanager.TypeInactiveError):
        client.enqueue("py.job", {"inactive": True})
    client.set_type_active("py.job", True)

    if SQLITE:  # a file never migrated
        empty = db_name + ".empty"
    else:
        empty = "tm_py_empty_" + db_name[-8:]
        sql(f"CREATE DATABASE {empty}")
    try:
        with taskmanager.Client(config(empty)) as c, pytest.raises(taskmanager.SchemaOutdatedError):
            c.stats()
    finally:
        if not SQLITE:
            sql(f"DROP DATABASE {empty}")


def test_the_servers_login_and_connection_errors(db_name):
    """The server's refusals: credentials (the password never echoed), and nothing listening."""
    with pytest.raises(taskmanager.ConfigError) as info:
        taskmanager.Client(config(db_name, db_user="nobody", db_pass="Sup3r-Secret"))
    assert info.value.code == Code.CONFIG
    assert "Sup3r-Secret" not in str(info.value) + json.dumps(info.value.details)
    with pytest.raises(taskmanager.ConnectionFailedError) as info:
        taskmanager.Client(config(db_name, db_port=1, connect_timeout=2))
    assert info.value.code == Code.CONNECTION


def test_closed_client_and_idempotent_close(db_name):
    c = taskmanager.Client(config(db_name))
    c.close()
    c.close()
    with pytest.raises(taskmanager.InvalidArgumentError):
        c.stats()


def test_missing_library_lists_the_paths_tried(tmp_path):
    package = Path(taskmanager.__file__).parent
    copy = tmp_path / "taskmanager"
    copy.mkdir()
    for f in package.glob("*.py"):
        (copy / f.name).write_text(f.read_text())
    env = dict(os.environ, TASKMANAGER_LIB="/nonexistent/libtaskmanager.so", PYTHONPATH=str(tmp_path))
    code = "import taskmanager"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert "LibraryNotFoundError" in result.stderr
    assert "/nonexistent/libtaskmanager.so" in result.stderr
    assert str(copy / "libtaskmanager.so") in result.stderr


def test_one_client_shared_by_eight_threads(client):
    claimed, errors = [], []

    def work(n):
        try:
            for i in range(25):
                client.enqueue("py.job", {"thread": n, "i": i})
                for task in client.claim(f"t{n}", limit=2):
                    task.complete({"by": n})
                    claimed.append(task.id)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for task in client.claim("cleanup", limit=1000):
        task.complete(None)
        claimed.append(task.id)
    assert len(claimed) == 200 and len(set(claimed)) == 200
    assert client.stats()["types"]["py.job"]["completed"] == 200


def test_parent_and_child_both_work_after_fork(client):
    client.enqueue("py.job", {"by": "parent-before"})
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            created = client.enqueue("py.job", {"by": "child"})
            ok = not created["deduplicated"] and len(client.claim("child")) == 1
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the child could not use the client"
    assert len(client.claim("parent", limit=5)) == 1
    assert sum(client.stats()["types"]["py.job"].values()) == 2


def _rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_hundred_thousand_calls_keep_rss_flat(client):
    tid = client.enqueue("py.job", {"rss": True})["id"]

    def calls(n):
        for i in range(n // 2):
            client.get_task(tid)
            try:
                client.get_task(987654321)  # the error path allocates and frees too
            except taskmanager.NotFoundError:
                pass

    calls(10_000)
    # RSS may still rise by a few MB while malloc first touches pages of the arena it already
    # reserved (seen: about 3.6 MB over 100,000 not-found calls, then flat, with the in-use heap
    # flat throughout); a leak of 40 bytes per call or more would exceed the limit below.
    before = _rss_kb()
    calls(100_000)
    after = _rss_kb()
    print(f"RSS before {before} kB, after 100,000 calls {after} kB")
    assert after - before < 4096, f"RSS grew from {before} kB to {after} kB"


def test_missing_privileges_are_a_database_error_with_the_server_code():
    name = "tm_rt_py_" + os.urandom(4).hex()
    sql(f"CREATE DATABASE {name}")
    runtime_user = os.environ.get("TASKMANAGER_TEST_RUNTIME_USER", "taskmanager_rt")
    try:
        with taskmanager.Client(config(name, db_user=runtime_user, db_pass="")) as c:
            with pytest.raises(taskmanager.DatabaseError) as info:
                c.migrate()
        assert info.value.code == Code.DATABASE
        assert info.value.details["server_code"] == 1142
        assert "privilege" in info.value.message
    finally:
        sql(f"DROP DATABASE {name}")


def test_every_code_has_an_exception_that_carries_it():
    from taskmanager._errors import error_for

    codes = {k: v for k, v in vars(Code).items() if k.isupper() and k != "OK"}
    assert len(codes) == 16
    for name, code in codes.items():
        e = error_for(code, f"message for {name}", None)
        assert type(e) is not taskmanager.TaskManagerError, f"{name} has no exception class of its own"
        assert e.code == code and isinstance(e, taskmanager.TaskManagerError)
    assert isinstance(error_for(Code.OUTCOME_UNKNOWN, "x", None), taskmanager.ConnectionFailedError)


def test_the_examples_run_end_to_end(db_name):
    examples = Path(__file__).resolve().parent.parent / "examples"
    env = dict(os.environ, PYTHONPATH=str(examples.parent),
               TASKMANAGER_DATABASE_URL=database_url(db_name))
    produced = subprocess.run([sys.executable, str(examples / "producer.py"), "3"], env=env, capture_output=True, text=True, check=True)
    assert produced.stdout.count("enqueued task") == 3
    worked = subprocess.run([sys.executable, str(examples / "worker.py"), "--once"], env=env, capture_output=True, text=True, check=True)
    assert "worker: 3 task(s) handled" in worked.stdout, worked.stdout + worked.stderr
