"""The Worker helper end to end: handlers that succeed, raise, outlive their lease, and a
graceful stop on SIGTERM."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

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
