"""Flow control from Python, sync and asyncio, against the real library and server: pausing
and resuming a type, max_running (also with many threads claiming), a rate with the claim
report's next_allowed_at, waiting claims woken by another thread and another process or ending
at their deadline, a cancelled waiting claim giving its task back, and every bad value named in
its error. Waits are on events and deadlines; sleeps only space out steps whose order the
assertions then check."""

import asyncio
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import taskmanager
from taskmanager.aio import AsyncClaimReport, AsyncClient

from conftest import config

UTC = datetime.timezone.utc


def at(text):
    """An RFC 3339 instant from the library as an aware datetime (microseconds at most)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    assert match, f"not RFC 3339: {text!r}"
    fraction = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.datetime.fromisoformat(match.group(1) + fraction + zone)


def ids(tasks):
    return [t.id for t in tasks]


@pytest.fixture
def other(client):
    client.register_type("py.other", {"type": "object"})
    return "py.other"


# -- pause and resume ---------------------------------------------------------------------------


def test_a_paused_type_is_not_claimed_until_resumed(client, other):
    client.enqueue("py.job", {"n": "running"})
    [running] = client.claim("w", types=["py.job"])

    paused = client.pause_type("py.job")
    assert (paused["name"], paused["paused"], paused["paused_until"]) == ("py.job", True, None)
    assert client.get_type("py.job")["paused"] is True

    queued = client.enqueue("py.job", {"n": "queued"})  # enqueues are still accepted
    assert queued["status"] == "pending"
    elsewhere = client.enqueue(other, {"n": "other"})
    assert ids(client.claim("w", types=["py.job", other], limit=10)) == [elsewhere["id"]]
    assert client.claim("w", types=["py.job"], limit=10) == []
    assert running.complete({"ok": True})["status"] == "completed"  # claimed before: finishes
    assert client.get_task(queued["id"])["attempts"] == 0, "a paused task spends no attempt"

    flow = client.stats()["flow"]["py.job"]
    assert flow["paused"] is True and flow["paused_until"] is None
    assert 'taskmanager_type_paused{type="py.job"} 1' in client.metrics()

    resumed = client.resume_type("py.job")
    assert (resumed["paused"], resumed["paused_until"]) == (False, None)
    [task] = client.claim("w", types=["py.job"], limit=10)
    assert (task.id, task.attempts) == (queued["id"], 1)


def test_pause_until_is_the_next_allowed_start(client):
    client.enqueue("py.job", {"n": 1})
    until = datetime.datetime.now(UTC).replace(microsecond=0) + datetime.timedelta(hours=1)
    paused = client.pause_type("py.job", until)  # an aware datetime is sent as RFC 3339 UTC
    assert paused["paused"] is True and at(paused["paused_until"]) == until

    report = client.claim_report("w", types=["py.job"], limit=5)
    assert isinstance(report, taskmanager.ClaimReport)
    tasks, next_allowed_at = report
    assert tasks == [] and at(next_allowed_at) == until

    # Any zone and fractions of a second: the same instant comes back, in UTC.
    prague = datetime.timezone(datetime.timedelta(hours=2))
    later = (until + datetime.timedelta(minutes=1, microseconds=250)).astimezone(prague)
    assert at(client.pause_type("py.job", later)["paused_until"]) == later
    text = (until + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert at(client.pause_type("py.job", until=text)["paused_until"]) == at(text)
    client.resume_type("py.job")
    report = client.claim_report("w", types=["py.job"], limit=5)
    assert len(report.tasks) == 1 and isinstance(report.tasks[0], taskmanager.Task)
    assert report.tasks[0].complete()["status"] == "completed"


def test_a_bad_pause_names_until_and_an_unknown_type_is_not_found(client):
    now = datetime.datetime.now(UTC)
    for until in (now - datetime.timedelta(minutes=1), now + datetime.timedelta(days=2 * 366), "next tuesday"):
        with pytest.raises(taskmanager.InvalidArgumentError, match="until"):
            client.pause_type("py.job", until)
    with pytest.raises(taskmanager.InvalidArgumentError, match="until.*time zone"):
        client.pause_type("py.job", datetime.datetime.now() + datetime.timedelta(hours=1))  # naive
    assert client.get_type("py.job")["paused"] is False, "a refused pause changes nothing"
    for call in (lambda: client.pause_type("py.missing"), lambda: client.resume_type("py.missing"),
                 lambda: client.set_type_limits("py.missing", max_running=1)):
        with pytest.raises(taskmanager.NotFoundError):
            call()


# -- limits ---------------------------------------------------------------------------------------


def test_max_running_one_hands_out_the_second_task_only_after_the_first_completes(client, other):
    limited = client.set_type_limits("py.job", max_running=1)
    assert (limited["max_running"], limited["rate"]) == (1, None)
    first = client.enqueue("py.job", {"n": 1}, priority=1)["id"]
    second = client.enqueue("py.job", {"n": 2})["id"]

    [task] = client.claim("w", types=["py.job"], limit=10)
    assert task.id == first
    assert client.claim("w", types=["py.job"], limit=10) == []
    # Saturated is skipped, not waited for: the claim takes other types' work.
    elsewhere = client.enqueue(other, {"n": 3})["id"]
    assert ids(client.claim("w", types=["py.job", other], limit=10)) == [elsewhere]
    assert client.stats()["flow"]["py.job"]["running"] == 1
    assert client.get_task(second)["attempts"] == 0, "a limited task spends no attempt"

    task.complete()
    assert ids(client.claim("w", types=["py.job"], limit=10)) == [second]
    assert client.set_type_limits("py.job", max_running=None)["max_running"] is None


def test_max_running_holds_with_many_threads_claiming(client):
    client.set_type_limits("py.job", max_running=2)
    total = 12
    client.enqueue_batch([{"type": "py.job", "params": {"n": n}} for n in range(total)])
    lock = threading.Lock()
    state = {"holding": 0, "most": 0, "done": 0}
    errors = []

    def work():
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with lock:
                    if state["done"] >= total:
                        return
                tasks = client.claim(f"w-{threading.get_ident()}", types=["py.job"], limit=3, wait_seconds=0.5)
                with lock:
                    # Counted after the claim returns and before the complete is sent: never
                    # more than the leases really held.
                    state["holding"] += len(tasks)
                    state["most"] = max(state["most"], state["holding"])
                for task in tasks:
                    with lock:
                        state["holding"] -= 1
                        state["done"] += 1
                    task.complete()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    assert state["done"] == total, state
    assert 1 <= state["most"] <= 2, state
    assert client.stats()["types"]["py.job"].get("completed") == total


def test_a_rate_of_two_per_minute_refuses_the_third_and_reports_when_it_may_start(client):
    client.set_type_limits("py.job", max_running=5)
    limited = client.set_type_limits("py.job", rate={"limit": 2, "per_seconds": 60})
    assert limited["max_running"] == 5, "an argument left out keeps its limit"
    assert limited["rate"] == {"limit": 2, "per_seconds": 60, "burst": 0}
    assert client.get_type("py.job")["rate"] == limited["rate"]
    queued = [client.enqueue("py.job", {"n": n})["id"] for n in range(3)]

    claimed_at = datetime.datetime.now(UTC)
    one = client.claim("w", types=["py.job"])
    two = client.claim("w", types=["py.job"])
    assert ids(one + two) == queued[:2]
    assert client.claim("w", types=["py.job"]) == []
    for task in one + two:  # the rate counts starts, not running tasks
        task.complete()
    tasks, next_allowed_at = client.claim_report("w", types=["py.job"], limit=10)
    assert tasks == []
    assert next_allowed_at is not None
    # The window opens again when the first start leaves it: about a minute after it.
    assert claimed_at + datetime.timedelta(seconds=50) <= at(next_allowed_at) \
        <= claimed_at + datetime.timedelta(seconds=62), next_allowed_at
    flow = client.stats()["flow"]["py.job"]
    assert (flow["started_in_window"], flow["rate"]["limit"], flow["max_running"]) == (2, 2, 5)
    assert 'taskmanager_type_rate_started{type="py.job"} 2' in client.metrics()
    assert client.get_task(queued[2])["attempts"] == 0

    cleared = client.set_type_limits("py.job", **{"rate": None})  # a dict of limits works too
    assert (cleared["max_running"], cleared["rate"]) == (5, None)
    assert ids(client.claim("w", types=["py.job"])) == [queued[2]]


def test_a_burst_adds_to_the_limit(client):
    client.set_type_limits("py.job", rate={"limit": 1, "per_seconds": 3600, "burst": 2})
    client.enqueue_batch([{"type": "py.job", "params": {"n": n}} for n in range(4)])
    assert len(client.claim("w", types=["py.job"], limit=10)) == 3
    assert client.claim("w", types=["py.job"], limit=10) == []


@pytest.mark.parametrize("limits, field", [
    ({"max_running": -1}, "max_running"),
    ({"max_running": 0}, "max_running"),
    ({"max_running": 100001}, "max_running"),
    ({"rate": {"limit": 0, "per_seconds": 60}}, "rate.limit"),
    ({"rate": {"limit": 1, "per_seconds": 0}}, "rate.per_seconds"),
    ({"rate": {"limit": 1, "per_seconds": 31536001}}, "rate.per_seconds"),
    ({"rate": {"limit": 1, "per_seconds": 60, "burst": -1}}, "rate.burst"),
])
def test_a_bad_limit_names_its_field(client, limits, field):
    with pytest.raises(taskmanager.InvalidArgumentError, match=re.escape(field)) as raised:
        client.set_type_limits("py.job", **limits)
    assert raised.value.code == taskmanager.ErrorCode.INVALID_ARGUMENT
    kept = client.get_type("py.job")
    assert (kept["max_running"], kept["rate"]) == (None, None), "a refused change changes nothing"


def test_set_type_limits_takes_only_its_two_limits(client):
    with pytest.raises(TypeError):
        client.set_type_limits("py.job", {"max_running": 1})  # keyword arguments only
    with pytest.raises(TypeError):
        client.set_type_limits("py.job", max_runing=1)  # a typo is not silently dropped


# -- waiting claims ---------------------------------------------------------------------------------


def test_a_waiting_claim_wakes_at_once_for_a_task_another_thread_enqueues(client):
    claiming = threading.Event()
    enqueued = {}

    def producer():
        claiming.wait(10)
        time.sleep(0.5)  # spaces the enqueue after the claim's start
        enqueued["id"] = client.enqueue("py.job", {"from": "thread"})["id"]
        enqueued["at"] = time.monotonic()

    thread = threading.Thread(target=producer)
    thread.start()
    claiming.set()
    started = time.monotonic()
    tasks = client.claim("w", types=["py.job"], wait_seconds=30)
    returned = time.monotonic()
    thread.join(10)
    assert ids(tasks) == [enqueued["id"]]
    assert started < enqueued["at"] - 0.3, "the task existed before the claim began: nothing was waited for"
    assert returned - enqueued["at"] < 1.0, "an enqueue in the same process did not wake the claim at once"


def test_a_waiting_claim_wakes_for_a_task_another_process_enqueues(client, db_name):
    script = (
        "import json, sys, time, taskmanager\n"
        "time.sleep(1.0)\n"  # spaces the enqueue after the parent's claim began
        "with taskmanager.Client(json.loads(sys.argv[1])) as c:\n"
        "    e = c.enqueue('py.job', {'from': 'process'})\n"
        "    print(e['id'], time.time(), flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, json.dumps(config(db_name))],
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ),
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(taskmanager.__file__))))
    try:
        started = time.time()
        tasks = client.claim("w", types=["py.job"], wait_seconds=30)
        returned = time.time()
        out, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, out
    task_id, enqueued_at = out.split()
    assert ids(tasks) == [int(task_id)], "the waiting claim did not return the other process's task"
    assert started < float(enqueued_at), "the claim began after the enqueue: nothing was waited for"
    assert returned - started < 20, "the claim ran to its deadline instead of waking"


def test_a_waiting_claim_with_nothing_to_claim_returns_empty_at_its_deadline(client):
    started = time.monotonic()
    assert client.claim("w", types=["py.job"], wait_seconds=1.5) == []
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 6, elapsed
    assert tuple(client.claim_report("w", types=["py.job"], wait_seconds=0.5)) == ([], None)
    with pytest.raises(taskmanager.InvalidArgumentError, match="wait_seconds"):
        client.claim("w", types=["py.job"], wait_seconds=61)


def test_complete_and_claim_commits_the_complete_then_waits(client):
    first = client.enqueue("py.job", {"n": 1})["id"]
    [task] = client.claim("w", types=["py.job"])
    seen = {}

    def look():  # while the claim waits, the complete is visible to others
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and client.get_task(first)["status"] != "completed":
            time.sleep(0.05)
        seen["status"] = client.get_task(first)["status"]
        seen["id"] = client.enqueue("py.job", {"n": 2})["id"]

    watcher = threading.Thread(target=look)
    watcher.start()
    completed, claimed = client.complete_and_claim(task.id, task.lease_token, {"ok": True}, "w",
                                                   types=["py.job"], wait_seconds=20)
    watcher.join(10)
    assert completed["status"] == "completed" and seen["status"] == "completed"
    assert ids(claimed) == [seen["id"]]


# -- asyncio --------------------------------------------------------------------------------------


def test_async_flow_control_round_trip(client, db_name):
    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            assert (await tm.pause_type("py.job"))["paused"] is True
            await tm.enqueue("py.job", {"n": 1})
            assert await tm.claim("w", types=["py.job"]) == []
            assert (await tm.resume_type("py.job"))["paused"] is False
            limited = await tm.set_type_limits("py.job", rate={"limit": 1, "per_seconds": 60})
            assert limited["rate"]["limit"] == 1 and limited["max_running"] is None
            await tm.enqueue("py.job", {"n": 2})
            report = await tm.claim_report("w", types=["py.job"], limit=5)
            # One start per minute: the second task waits for the window, and the report says when.
            assert isinstance(report, AsyncClaimReport)
            [task] = report.tasks
            assert at(report.next_allowed_at) > datetime.datetime.now(UTC) + datetime.timedelta(seconds=50)
            assert (await task.complete())["status"] == "completed"
            tasks, next_allowed_at = await tm.claim_report("w", types=["py.job"], limit=5)
            assert tasks == [] and next_allowed_at == report.next_allowed_at
            with pytest.raises(taskmanager.InvalidArgumentError, match="max_running"):
                await tm.set_type_limits("py.job", max_running=-1)
            assert (await tm.set_type_limits("py.job", rate=None))["rate"] is None

    asyncio.run(main())


def test_an_async_waiting_claim_leaves_the_loop_and_the_other_calls_free(client):
    async def main():
        # One thread for ordinary calls: a waiting claim that took it would hold up the enqueue
        # below until its deadline, and the claim would come back empty.
        tm = AsyncClient(client, max_threads=1, close_client=False)
        try:
            started = time.monotonic()
            claiming = asyncio.ensure_future(tm.claim("w", types=["py.job"], wait_seconds=20))
            ticks = 0
            while time.monotonic() - started < 0.5:
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks >= 10, f"the loop ran only {ticks} times in 0.5 s while the claim waited"
            assert not claiming.done()
            enqueued = await tm.enqueue("py.job", {"from": "the loop"})
            assert time.monotonic() - started < 5, "the enqueue waited behind the waiting claim"
            [task] = await claiming
            assert task.id == enqueued["id"] and time.monotonic() - started < 10
            await task.complete()
        finally:
            await tm.close()

    asyncio.run(main())


def test_a_cancelled_async_waiting_claim_gives_back_what_it_gets(client):
    async def main():
        tm = AsyncClient(client, close_client=False)
        try:
            claiming = asyncio.ensure_future(tm.claim("w", types=["py.job"], wait_seconds=20))
            await asyncio.sleep(0.2)  # lets the claim start waiting
            claiming.cancel()
            with pytest.raises(asyncio.CancelledError):
                await claiming
            # The claim still waits in its thread: the task it takes now is released at once.
            enqueued = await tm.enqueue("py.job", {"n": 1})
            deadline = time.monotonic() + 20
            history = []
            while "released" not in history and time.monotonic() < deadline:
                history = [h["status_change"] for h in await tm.history(enqueued["id"])]
                await asyncio.sleep(0.05)
            assert history == ["created", "claimed", "released"], history
            [task] = await tm.claim("w2", types=["py.job"])
            assert (task.id, task.attempts) == (enqueued["id"], 1), "the released claim spent no attempt"
            await task.complete()
        finally:
            await tm.close()

    asyncio.run(main())
