"""taskmanager.aio against the real library and server: the client's round trip, a loop that
keeps running while the library waits, close() waiting for calls in flight, and the async
Worker's concurrency, heartbeats, failures, graceful stop on a signal, and waiting in its
claims when idle (not while tasks run).

Plain tests that call asyncio.run, so the suite needs no asyncio plugin for pytest."""

import asyncio
import inspect
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
from taskmanager import PermanentError, RetryLater
from taskmanager.aio import AsyncClient, AsyncTask, Worker
from conftest import HOST, PASS, PORT, USER, config, sql

WAIT = 20  # seconds: a bound on waits for events, so a broken feature fails instead of hanging


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


class TableLock:
    """Another session holding ``LOCK TABLES tasks WRITE``: every call that reads or writes
    tasks waits on it until :meth:`release`. Held by a mariadb client kept open on a pipe."""

    def __init__(self, database):
        env = dict(os.environ, MYSQL_PWD=PASS)
        self.proc = subprocess.Popen(
            ["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER, "-N", "-B", "--unbuffered", database],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.proc.stdin.write("LOCK TABLES tasks WRITE; SELECT 'locked';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        assert line == "locked", f"could not lock the table: {line!r} {self.proc.stderr.read()}"

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("UNLOCK TABLES;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=WAIT)


async def until_a_call_waits_on_the_lock(database):
    """Returns once the server shows a session of ``database`` waiting for the table lock: the
    call is then inside the library, blocked, for as long as the lock is held."""
    query = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
             f"WHERE DB = '{database}' AND STATE = 'Waiting for table metadata lock'")
    deadline = time.monotonic() + WAIT
    while int(await asyncio.to_thread(sql, query)) == 0:
        assert time.monotonic() < deadline, "no call ever waited on the lock"
        await asyncio.sleep(0.02)


class Ticker:
    """Counts turns of the event loop; :meth:`turns` waits for ``n`` more of them. If anything
    blocked the loop's thread, no turn would happen and the wait would time out."""

    def __init__(self):
        self.count = 0
        self._waiters = []
        self._task = asyncio.ensure_future(self._tick())

    async def _tick(self):
        while True:
            await asyncio.sleep(0)
            self.count += 1
            for target, event in list(self._waiters):
                if self.count >= target:
                    event.set()

    async def turns(self, n):
        event = asyncio.Event()
        self._waiters.append((self.count + n, event))
        await asyncio.wait_for(event.wait(), WAIT)

    def stop(self):
        self._task.cancel()


def test_async_client_round_trip(client, db_name):
    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            await tm.migrate()
            kind = await tm.register_type("py.async", {"type": "object", "required": ["n"]}, version="1.0")
            assert (kind["name"], kind["version"], kind["changed"]) == ("py.async", "1.0", True)
            assert (await tm.get_type("py.async"))["is_active"] is True
            assert "py.async" in [t["name"] for t in await tm.list_types()]
            assert (await tm.set_type_active("py.async", False))["is_active"] is False
            with pytest.raises(taskmanager.TypeInactiveError):
                await tm.enqueue("py.async", {"n": 0})
            await tm.set_type_active("py.async", True)

            first = await tm.enqueue("py.async", {"n": 1}, priority=5)
            assert first["status"] == "pending" and first["deduplicated"] is False
            windowed = await tm.enqueue("py.async", {"n": 1}, unique_for_seconds=3600)
            assert (windowed["id"], windowed["deduplicated"]) == (first["id"], True)
            batch = await tm.enqueue_batch({"type": "py.async", "params": {"n": n}} for n in (2, 3))
            assert [b["deduplicated"] for b in batch] == [False, False]
            with pytest.raises(taskmanager.ValidationError):
                await tm.enqueue("py.async", {})

            [task] = await tm.claim("aw", types=["py.async"])
            assert isinstance(task, AsyncTask) and task.id == first["id"] and task.params == {"n": 1}
            assert (await task.heartbeat(progress=40))["progress"] == 40
            assert task.sync.lease_expires_at == task.lease_expires_at
            completed, [second] = await tm.complete_and_claim(task.id, task.lease_token, {"ok": 1}, "aw",
                                                              types=["py.async"])
            assert completed["repeated"] is False and isinstance(second, AsyncTask)
            assert (await second.fail("flaky", retry_in_seconds=0))["status"] == "pending"
            [again, third] = await tm.claim("aw", types=["py.async"], limit=2, sort_by="id")
            assert again.id == second.id and again.attempts == 2
            assert (await again.release())["status"] == "pending"
            outcomes = await tm.complete_batch([{"id": third.id, "lease_token": third.lease_token, "result": 3}])
            assert outcomes == [{"id": third.id, "ok": True}]

            [legacy] = await tm.claim("legacy", types=["py.async"])
            assert (await tm.heartbeat_as_worker(legacy.id, "legacy", progress=5))["progress"] == 5
            assert (await tm.fail_as_worker(legacy.id, "legacy", "no", retry=False))["status"] == "failed"
            assert (await tm.retry(legacy.id))["status"] == "pending"
            [legacy] = await tm.claim("legacy", types=["py.async"])
            assert (await tm.complete_as_worker(legacy.id, "legacy", {"x": 1}))["status"] == "completed"

            doomed = (await tm.enqueue("py.async", {"n": 4}))["id"]
            assert (await tm.cancel(doomed, "not needed"))["status"] == "cancelled"
            assert await tm.claim("aw", type_pattern="nothing%", type_ids=[kind["id"]]) == []
            assert (await tm.get_task(first["id"]))["result"] == {"ok": 1}
            assert [h["status_change"] for h in await tm.history(first["id"])] == [
                "created", "claimed", "progress", "completed"]
            assert len(await tm.list_tasks(type="py.async", status="completed")) == 3
            assert (await tm.recover_expired())["recovered"] == 0
            stats = await tm.stats()
            assert stats["types"]["py.async"] == {"pending": 0, "claimed": 0, "completed": 3, "failed": 0, "cancelled": 1}
            assert 'taskmanager_tasks{type="py.async",status="completed"} 3' in await tm.metrics()
            assert (await tm.prune(3600, dry_run=True))["dry_run"] is True
            with pytest.raises(taskmanager.NotFoundError) as info:
                await tm.get_task(987654321)
            assert info.value.code is taskmanager.ErrorCode.NOT_FOUND
        assert tm.closed
        with pytest.raises(taskmanager.InvalidArgumentError, match="closed"):
            await tm.stats()

    run(main())


def test_async_cancel_and_retry_where(client, db_name):
    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            await tm.migrate()
            await tm.register_type("py.async", {"type": "object"})
            doomed = (await tm.enqueue("py.async", {"n": 4}))["id"]
            assert (await tm.cancel(doomed, "not needed"))["status"] == "cancelled"
            assert (await tm.retry_where(ids=[doomed], dry_run=True))["changed"] == [doomed]
            assert (await tm.cancel_where(ids=[doomed]))["unchanged"] == [doomed]
            assert (await tm.retry_where(status="pending"))["matched"] == 0

    run(main())


def test_async_client_mirrors_every_method_of_the_client():
    def public(cls):
        return {n: f for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}

    sync_methods = public(taskmanager.Client)
    async_methods = public(AsyncClient)
    assert set(sync_methods) - {"close"} <= set(async_methods), "methods without an async twin"
    for name, fn in sync_methods.items():
        twin = async_methods[name]
        assert inspect.iscoroutinefunction(twin), f"AsyncClient.{name} is not async"
        sync_params = [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]
        async_params = [(p.name, p.kind, p.default) for p in inspect.signature(twin).parameters.values()]
        assert async_params == sync_params, f"AsyncClient.{name} takes other parameters than Client.{name}"
    task_methods = {n for n in public(taskmanager.Task)}
    assert task_methods <= {n for n in public(AsyncTask)}


def test_the_loop_runs_while_a_call_waits_and_close_waits_for_it(client, db_name):
    tid = client.enqueue("py.job", {"locked": True})["id"]

    async def main():
        tm = await AsyncClient.open(config(db_name))
        ticker = Ticker()
        lock = TableLock(db_name)
        try:
            blocked = asyncio.ensure_future(tm.get_task(tid))
            await until_a_call_waits_on_the_lock(db_name)
            # The call is inside the library, waiting on the server: the loop still turns and
            # other calls of the same client still finish (task_types is not locked).
            await ticker.turns(100)
            assert (await tm.get_type("py.job"))["name"] == "py.job"
            assert not blocked.done()

            # close() must not free the handle under the waiting call: it refuses new calls at
            # once and returns only after the waiting one has.
            closing = asyncio.ensure_future(tm.close())
            await ticker.turns(100)
            with pytest.raises(taskmanager.InvalidArgumentError, match="closed"):
                await tm.stats()
            assert not blocked.done() and not closing.done()
        finally:
            lock.release()
        assert (await asyncio.wait_for(blocked, WAIT))["id"] == tid
        await asyncio.wait_for(closing, WAIT)
        ticker.stop()

    run(main())


def test_a_cancelled_claim_gives_its_task_back(client, db_name):
    tid = client.enqueue("py.job", {"cancelled": True})["id"]

    async def main():
        tm = await AsyncClient.open(config(db_name))
        lock = TableLock(db_name)
        try:
            claiming = asyncio.ensure_future(tm.claim("impatient"))
            await until_a_call_waits_on_the_lock(db_name)
            claiming.cancel()
            with pytest.raises(asyncio.CancelledError):
                await claiming
        finally:
            lock.release()
        await tm.close()  # returns once the thread has claimed and released

    run(main())
    task = client.get_task(tid)
    assert task["status"] == "pending" and task["lease_expires_at"] is None, task
    assert [h["status_change"] for h in client.history(tid)][-2:] == ["claimed", "released"]


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_the_worker_runs_n_tasks_at_once(client, db_name, kind):
    n = 4
    ids = [client.enqueue("py.job", {"n": i})["id"] for i in range(n + 2)]
    running = 0
    peak = 0
    count_lock = threading.Lock()

    def enter():
        nonlocal running, peak
        with count_lock:
            running += 1
            peak = max(peak, running)

    def leave():
        nonlocal running
        with count_lock:
            running -= 1

    async def main():
        arrived = 0
        all_in = asyncio.Event()
        barrier = threading.Barrier(n, timeout=WAIT)

        async def handle_async(task):
            nonlocal arrived
            enter()
            arrived += 1
            if arrived == n:
                all_in.set()
            # Only n handlers running side by side get past this: one at a time would wait here.
            await asyncio.wait_for(all_in.wait(), WAIT)
            leave()
            return {"n": task.params["n"]}

        def handle_sync(task):
            assert isinstance(task, taskmanager.Task)
            enter()
            if task.params["n"] < n:  # the first claim hands out these n (oldest first)
                barrier.wait()  # only n threads side by side get past it
            leave()
            return {"n": task.params["n"]}

        async with AsyncClient.open(config(db_name)) as tm:
            handler = handle_async if kind == "async" else handle_sync
            worker = Worker(tm, {"py.job": handler}, concurrency=n, lease_seconds=60)
            handled = await worker.run(stop_when_idle=True)
            return handled, worker

    handled, worker = run(main())
    assert (handled, worker.processed, worker.failed) == (n + 2, n + 2, 0)
    assert peak == n, f"{peak} handlers ran at once, expected {n}"
    assert [client.get_task(i)["result"] for i in ids] == [{"n": i} for i in range(n + 2)]


@pytest.mark.parametrize("heartbeats", [True, False])
def test_heartbeats_keep_the_lease_beyond_lease_seconds(client, db_name, heartbeats):
    tid = client.enqueue("py.job", {"slow": True})["id"]

    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            stolen = []

            async def handler(task):
                lease_end = task.lease_expires_at  # as the claim gave it, before any heartbeat
                # Wait until the server's clock has passed it: the lease stands only if renewed.
                while (await tm.stats())["generated_at"] <= lease_end:
                    await asyncio.sleep(0.05)
                stolen.extend(await tm.claim("thief"))
                return "finished"

            worker = Worker(tm, {"py.job": handler}, lease_seconds=1, heartbeat_interval=0.2 if heartbeats else 0)
            await worker.run(max_tasks=1)
            return stolen, worker

    stolen, worker = run(main())
    if heartbeats:
        assert stolen == [] and worker.processed == 1
        assert client.get_task(tid)["status"] == "completed"
    else:
        # Without heartbeats the same wait loses the task: the check above can fail.
        assert [t.id for t in stolen] == [tid] and worker.processed == 0
        assert client.get_task(tid)["claimed_by"] == "thief"


def test_worker_failures_retry_or_give_up(client, db_name):
    client.register_type("py.sync", {"type": "object"})

    async def handle(task):
        kind = task.params["kind"]
        if kind == "flaky" and task.attempts == 1:
            raise RetryLater("try again", seconds=0)
        if kind == "broken":
            raise PermanentError("cannot be done")
        if kind == "crash":
            raise ValueError("boom")
        return {"done": kind}

    def handle_sync(task):
        if task.params["kind"] == "sync-crash":
            raise KeyError("missing")
        return handle  # an awaitable from a thread is refused, not silently awaited

    ids = {k: client.enqueue("py.job", {"kind": k}, max_attempts=3)["id"] for k in ["ok", "flaky", "broken", "crash"]}
    ids.update({k: client.enqueue("py.sync", {"kind": k})["id"] for k in ["sync-crash"]})

    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            worker = Worker(tm, {"py.job": handle, "py.sync": handle_sync}, concurrency=3, lease_seconds=30)
            await worker.run(stop_when_idle=True)
            return worker

    worker = run(main())
    assert client.get_task(ids["ok"])["result"] == {"done": "ok"}
    flaky = client.get_task(ids["flaky"])
    assert (flaky["status"], flaky["attempts"]) == ("completed", 2)
    broken = client.get_task(ids["broken"])
    assert (broken["status"], broken["attempts"]) == ("failed", 1)
    assert "PermanentError: cannot be done" in broken["error_message"]
    crash = client.get_task(ids["crash"])
    assert crash["status"] == "pending" and crash["attempts"] == 1, "a plain exception retries with backoff"
    assert crash["run_at"] > crash["updated_at"] and "ValueError: boom" in crash["error_message"]
    sync_crash = client.get_task(ids["sync-crash"])
    assert sync_crash["status"] == "pending" and "KeyError" in sync_crash["error_message"]
    assert worker.processed == 2 and worker.failed == 4


def test_a_handler_returning_an_awaitable_from_its_thread_fails_clearly(client, db_name):
    tid = client.enqueue("py.job", {})["id"]

    async def later(task):
        return None

    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            await Worker(tm, {"py.job": lambda task: later(task)}).run(max_tasks=1)

    run(main())
    assert "declare it with `async def`" in client.get_task(tid)["error_message"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_current_task_then_exits_0(client, db_name, signum):
    tid = client.enqueue("py.job", {"n": 1})["id"]
    client.enqueue("py.job", {"n": 2})
    script = textwrap.dedent(f"""
        import asyncio, logging, sys
        from taskmanager.aio import AsyncClient, Worker
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)

        async def main():
            async with AsyncClient.open({config(db_name)!r}) as tm:
                async def handle(task):
                    print("started", task.id, flush=True)
                    await worker.wait_for_stop()  # returns only once the signal has been handled
                    print("finishing", task.id, flush=True)
                    return "ok"
                worker = Worker(tm, {{"py.job": handle}})
                worker.install_signal_handlers()
                handled = await worker.run()
                print("exited cleanly", handled, worker.processed, flush=True)

        asyncio.run(main())
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(taskmanager.__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("started"), line + proc.stderr.read()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert f"finishing {tid}" in out and "exited cleanly 1 1" in out, out + err
    assert client.get_task(tid)["status"] == "completed"
    assert client.stats()["types"]["py.job"]["pending"] == 1, "the second task was left for another worker"


def _watch_claims(tm):
    """Records the worker's claims on ``tm``: ``waits`` holds each one's ``wait_seconds`` and
    ``starts`` its start time (monotonic); ``until(condition, what)`` returns once
    ``condition(starts, waits)`` holds."""
    starts, waits = [], []
    changed = asyncio.Event()
    claim = tm.claim

    async def watched(*args, **kwargs):
        starts.append(time.monotonic())
        waits.append(kwargs.get("wait_seconds"))
        changed.set()
        return await claim(*args, **kwargs)

    async def until(condition, what):
        deadline = time.monotonic() + 30
        while not condition(starts, waits):
            changed.clear()
            left = deadline - time.monotonic()
            assert left > 0, f"the worker never {what}"
            try:
                await asyncio.wait_for(changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    tm.claim = watched
    return starts, waits, until


def test_an_idle_worker_takes_another_process_task_within_a_second_and_stops_within_its_wait(client, db_name):
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
    figures = {}

    async def main():
        started = []
        handled = asyncio.Event()

        async def handle(task):
            started.append(time.time())
            handled.set()
            return "ok"

        async with AsyncClient.open(config(db_name)) as tm:
            starts, waits, until = _watch_claims(tm)
            worker = Worker(tm, {"py.job": handle}, worker_id="py-aio-idle-worker")
            running = asyncio.ensure_future(worker.run())
            try:
                line = await asyncio.to_thread(producer.stdout.readline)
                assert line.strip() == "ready", line
                # Idle for 4 s, through whole waits and into the claim that starts then: polling
                # with the backoff it used to have (0.1 s doubling up to idle_max, 5 s), the
                # worker would not look again before 6.3 s.
                await until(lambda s, w: s[-1] - s[0] >= 4.0, "started a claim 4 s after its first")
                producer.stdin.write("go\n")
                producer.stdin.flush()
                enqueued = float(await asyncio.to_thread(producer.stdout.readline))
                await asyncio.wait_for(handled.wait(), WAIT)
                figures["latency"] = started[0] - enqueued

                # Idle again: stop() ends the loop when the claim now waiting returns.
                handled_at = time.monotonic()
                await until(lambda s, w: s[-1] > handled_at, "claimed again after the task")
                asked = time.monotonic()
                worker.stop()
                figures["handled"] = await asyncio.wait_for(asyncio.shield(running), WAIT)
                figures["stop"] = time.monotonic() - asked
            finally:
                worker.stop()
                await asyncio.wait_for(running, WAIT)
            figures["waits"] = set(waits)
            figures["processed"] = worker.processed
            figures["wait_seconds"] = worker.wait_seconds

    try:
        run(main())
    finally:
        producer.kill()
        producer.wait()
    print(f"\nasync idle worker: handler started {figures['latency']:.3f}s after the enqueue, "
          f"stop() took {figures['stop']:.3f}s")
    # A process idle for a second polls once a second: about 1 s, with room for a loaded machine
    # (the old backoff waited up to idle_max, 5 s).
    assert figures["latency"] < 2.5, f"the handler started {figures['latency']:.3f}s after the enqueue"
    assert figures["stop"] < figures["wait_seconds"] + 1.0, f"stop() took {figures['stop']:.3f}s"
    assert figures["waits"] == {1.0}, "every claim, all made with nothing in hand, waited the default 1 s"
    assert (figures["handled"], figures["processed"]) == (1, 1)


def test_a_busy_worker_does_not_wait_in_its_claims(client, db_name):
    """With a task in hand the worker polls for its free slot, so the task finishing is noticed
    at once; it waits in its claims again once nothing is in hand."""
    tid = client.enqueue("py.job", {"n": 1})["id"]

    async def main():
        go_on = asyncio.Event()

        async def handle(task):
            await asyncio.wait_for(go_on.wait(), WAIT)
            return "ok"

        async with AsyncClient.open(config(db_name)) as tm:
            starts, waits, until = _watch_claims(tm)
            worker = Worker(tm, {"py.job": handle}, concurrency=2, idle_max=0.2)
            running = asyncio.ensure_future(worker.run())
            try:
                # The first claim (nothing in hand) waits and gets the task; those for the free
                # slot while it runs do not wait.
                await until(lambda s, w: len(w) >= 3, "claimed for its free slot")
                assert waits[0] == 1.0 and waits[1:3] == [None, None], waits
                go_on.set()
                await until(lambda s, w: w[-1] == 1.0 and len(w) > 3, "waited again with nothing in hand")
            finally:
                worker.stop()
                await asyncio.wait_for(running, WAIT)
            return worker.processed

    assert run(main()) == 1
    assert client.get_task(tid)["status"] == "completed"


@pytest.mark.parametrize("bad", [-1, 61])
def test_wait_seconds_is_checked(client, db_name, bad):
    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            with pytest.raises(ValueError, match="wait_seconds must be from 0 to 60"):
                Worker(tm, {"py.job": lambda task: None}, wait_seconds=bad)

    run(main())
