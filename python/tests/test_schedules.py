"""Recurring tasks from Python, sync and asyncio, against the real library and server: put
(and a bad field named in the error), list, a tick that enqueues a missed occurrence once, the
task's key naming its schedule and instant, delete."""

import asyncio

import pytest

import taskmanager
from taskmanager.aio import AsyncClient

from conftest import config, sql


def test_schedule_round_trip_and_a_tick(client, db_name):
    made = client.schedule_put("py.hourly", "py.job", "0 * * * *", timezone="Europe/Prague",
                               params={"n": 1}, misfire="once", misfire_grace_seconds=0)
    assert (made["name"], made["type"], made["misfire"], made["changed"]) == \
        ("py.hourly", "py.job", "once", True)
    assert made["next_run_at"].endswith(":00:00.000000Z")
    assert [s["name"] for s in client.schedule_list()] == ["py.hourly"]

    with pytest.raises(taskmanager.InvalidArgumentError, match="timezone"):
        client.schedule_put("py.bad", "py.job", "0 * * * *", timezone="Mars/Base")
    with pytest.raises(taskmanager.InvalidArgumentError, match="cron"):
        client.schedule_put("py.bad", "py.job", "every hour")
    with pytest.raises(taskmanager.NotFoundError):
        client.schedule_put("py.bad", "py.none", "0 * * * *")

    # The ticker was away for three hours: `once` runs the latest occurrence, once.
    sql("UPDATE task_schedules SET next_run_at = "
        "DATE_FORMAT(NOW(6) - INTERVAL 3 HOUR, '%Y-%m-%d %H:00:00')", db_name)
    report = client.schedules_tick()
    assert report["errors"] == []
    [made] = report["enqueued"]
    assert (made["schedule"], made["type"], made["deduplicated"]) == ("py.hourly", "py.job", False)
    assert report["missed"][0]["schedule"] == "py.hourly"
    task = client.get_task(made["task_id"])
    assert task["dedupe_key"] == "schedule:py.hourly@" + made["scheduled_for"]
    assert task["params"] == {"n": 1}
    assert client.schedules_tick() == {"enqueued": [], "missed": [], "errors": []}
    assert client.schedule_get("py.hourly")["last_run_at"].startswith(made["scheduled_for"][:19])

    assert client.schedule_delete("py.hourly")["name"] == "py.hourly"
    with pytest.raises(taskmanager.NotFoundError):
        client.schedule_delete("py.hourly")


def test_async_schedule_round_trip(client, db_name):
    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            made = await tm.schedule_put("py.nightly", "py.job", "0 3 * * *",
                                         timezone="America/New_York")
            assert made["timezone"] == "America/New_York"
            assert [s["name"] for s in await tm.schedule_list()] == ["py.nightly"]
            assert (await tm.schedule_get("py.nightly"))["id"] == made["id"]
            assert (await tm.schedules_tick())["enqueued"] == []
            assert (await tm.schedule_delete("py.nightly"))["name"] == "py.nightly"
            assert await tm.schedule_list() == []

    asyncio.run(main())
