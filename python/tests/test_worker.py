"""The Worker helper end to end: handlers that succeed, raise, outlive their lease, a graceful
stop on SIGTERM, and an idle worker waiting in its claims: it takes another process's task
within a second and stop() or SIGTERM end it within its wait."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import taskmanager
from taskmanager import PermanentError, RetryLater, Worker
from conftest import config


def test_worker_completes_retries_and_gives_up(client, caplog):
    seen = []

    def handle(task):
        seen.append((task.params["kind"], task.attempts))
        if task.params["kind"] == "flaky" and task.attempts == 1:
            raise RetryLater("try again", seconds=0)
        if task.params["kind"] == "broken":
            raise PermanentError("cannot be done")
        if task.params["kind"] == "crash":
            raise ValueError("boom")
        return {"done": task.params["kind"]}

    ids = {k: client.enqueue("py.job", {"kind": k}, max_attempts=3)["id"] for k in ["ok", "flaky", "broken", "crash"]}
    caplog.set_level(logging.INFO, logger="taskmanager.worker")
    worker = Worker(client, {"py.job": handle}, worker_id="py-test-worker", lease_seconds=30)
    worker.run(stop_when_idle=True)

    assert client.get_task(ids["ok"])["result"] == {"done": "ok"}
    flaky = client.get_task(ids["flaky"])
    assert (flaky["status"], flaky["attempts"]) == ("completed", 2)
    broken = client.get_task(ids["broken"])
    assert (broken["status"], broken["attempts"]) == ("failed", 1)
    assert "PermanentError: cannot be done" in broken["error_message"]
    crash = client.get_task(ids["crash"])
    assert crash["status"] == "pending" and crash["attempts"] == 1, "a plain exception retries with backoff"
    assert crash["run_at"] > crash["updated_at"], "the retry waits for a backoff after the failure"
    assert "ValueError: boom" in crash["error_message"]
    assert worker.processed == 2 and worker.failed == 3
    assert any("completed" in r.message for r in caplog.records)


def test_heartbeats_keep_a_long_task_leased(client):
    tid = client.enqueue("py.job", {"slow": True})["id"]
    other = []

    def slow(task):
        time.sleep(1.0)
        other.extend(client.claim("thief"))  # the lease (1 s) was renewed, so nothing to steal
        time.sleep(1.0)
        return "finished"

    worker = Worker(client, {"py.job": slow}, lease_seconds=1, heartbeat_interval=0.25)
    worker.run(stop_when_idle=True)
    assert other == []
    assert client.get_task(tid)["status"] == "completed"
    assert worker.processed == 1


def test_a_handler_that_outlives_its_lease_loses_the_task(client, db_name, caplog):
    tid = client.enqueue("py.job", {"slow": True})["id"]
    second = taskmanager.Client(config(db_name, max_task_attempts=5))
    rescued = []

    def rescuer():
        time.sleep(1.5)  # after the 1 s lease ran out without heartbeats
        for task in second.claim("rescuer"):
            rescued.append(task.attempts)
            task.complete({"by": "rescuer"})

    def too_slow(task):
        time.sleep(2.5)
        return {"by": "slow worker"}

    caplog.set_level(logging.WARNING, logger="taskmanager.worker")
    t = threading.Thread(target=rescuer)
    t.start()
    worker = Worker(client, {"py.job": too_slow}, lease_seconds=1, heartbeat_interval=0)
    worker.run(max_tasks=1)
    t.join()
    second.close()

    assert rescued == [2], "the expired lease counted as an attempt and the task was handed out again"
    task = client.get_task(tid)
    assert task["result"] == {"by": "rescuer"}
    assert worker.processed == 0
    assert any("lease lost" in r.message for r in caplog.records)
    assert "lease_expired" in [h["status_change"] for h in client.history(tid)]


def test_sigterm_stops_the_worker_after_the_current_task(client, db_name):
    tid = client.enqueue("py.job", {"n": 1})["id"]
    client.enqueue("py.job", {"n": 2})
    script = textwrap.dedent(f"""
        import logging, sys, time
        import taskmanager
        logging.basicConfig(level=logging.INFO, stream=sys.stdout)
        c = taskmanager.Client({config(db_name)!r})
        def handle(task):
            print("started", task.id, flush=True)
            time.sleep(1.0)
            return "ok"
        w = taskmanager.Worker(c, {{"py.job": handle}})
        w.install_signal_handlers()
        w.run()
        print("exited cleanly", w.processed, flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(taskmanager.__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    while line and not line.startswith("started"):  # skip the worker's log lines
        line = proc.stdout.readline()
    assert line.startswith("started"), "the worker never started a task"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "exited cleanly 1" in out
    assert client.get_task(tid)["status"] == "completed"
    assert client.stats()["types"]["py.job"]["pending"] == 1, "the second task was left for another worker"


def _watch_claims(client, monkeypatch):
    """Records when the worker starts each claim and what it waits; ``until(condition)`` returns
    once ``condition(starts)`` holds, ``starts`` being the claims' start times (monotonic)."""
    starts, waits = [], []
    changed = threading.Condition()
    claim = client.claim

    def watched(*args, **kwargs):
        with changed:
            starts.append(time.monotonic())
            waits.append(kwargs.get("wait_seconds"))
            changed.notify_all()
        return claim(*args, **kwargs)

    def until(condition, what, timeout=30.0):
        with changed:
            assert changed.wait_for(lambda: condition(starts), timeout), f"the worker never {what}"

    monkeypatch.setattr(client, "claim", watched)
    return waits, until


def test_an_idle_worker_takes_another_process_task_within_a_second_and_stops_within_its_wait(
        client, db_name, monkeypatch):
    # Another process enqueues when told to (a line on stdin) and says when it did.
    script = textwrap.dedent(f"""
        import sys, time
        import taskmanager
        c = taskmanager.Client({config(db_name)!r})
        print("ready", flush=True)
        sys.stdin.readline()
        at = time.time()
        c.enqueue("py.job", {{"from": "another process"}})
        print(repr(at), flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(taskmanager.__file__).parent.parent))
    producer = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=env)
    started = []
    handled = threading.Event()

    def handle(task):
        started.append(time.time())
        handled.set()
        return "ok"

    waits, until = _watch_claims(client, monkeypatch)
    worker = Worker(client, {"py.job": handle}, worker_id="py-idle-worker")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert producer.stdout.readline().strip() == "ready"
        # Idle for 4 s, through whole waits and into the claim that starts then: a worker
        # polling with the backoff it used to have (0.1 s doubling up to idle_max, 5 s) would
        # not look again before 6.3 s.
        until(lambda starts: starts[-1] - starts[0] >= 4.0, "started a claim 4 s after its first")
        producer.stdin.write("go\n")
        producer.stdin.flush()
        enqueued = float(producer.stdout.readline())
        assert handled.wait(10), "the worker never ran the task"
        latency = started[0] - enqueued
        # About 1 s (an idle process polls once a second), with room for a loaded machine.
        assert latency < 2.5, f"the handler started {latency:.3f}s after the enqueue"

        # Idle again: stop() ends the loop when the claim now waiting returns.
        handled_at = time.monotonic()
        until(lambda starts: starts[-1] > handled_at, "claimed again after the task")
        asked = time.monotonic()
        worker.stop()
        thread.join(10)
        took = time.monotonic() - asked
        assert not thread.is_alive(), "stop() did not end the idle worker"
        assert took < worker.wait_seconds + 1.0, f"stop() took {took:.3f}s"
    finally:
        worker.stop()
        thread.join(10)
        producer.kill()
        producer.wait()
    assert set(waits) == {1.0}, "every claim waited, for the default 1 s"
    assert worker.processed == 1


def test_sigterm_ends_an_idle_worker_within_its_wait(db_name, client):
    script = textwrap.dedent(f"""
        import logging, sys
        import taskmanager
        logging.basicConfig(level=logging.INFO, stream=sys.stdout)
        c = taskmanager.Client({config(db_name)!r})
        w = taskmanager.Worker(c, {{"py.job": lambda task: "ok"}}, wait_seconds=2)
        w.install_signal_handlers()
        w.run()
        print("exited cleanly", w.processed, flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(taskmanager.__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    while line and "started for" not in line:
        line = proc.stdout.readline()
    assert "started for" in line, "the worker never started"
    # The worker claims next, and waits up to 2 s in that claim: Python runs the signal
    # handler once the call returns.
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    took = time.monotonic() - signalled
    assert proc.returncode == 0, out
    assert "exited cleanly 0" in out
    assert took < 2 + 1.0, f"SIGTERM ended the idle worker after {took:.3f}s"


@pytest.mark.parametrize("bad", [-1, 61])
def test_wait_seconds_is_checked(client, bad):
    with pytest.raises(ValueError, match="wait_seconds must be from 0 to 60"):
        Worker(client, {"py.job": lambda task: None}, wait_seconds=bad)
