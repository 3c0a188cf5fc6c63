"""enqueue_with: the statements run on the application's own cursor, inside its transaction.

The suite has no MySQL driver of its own (the package is standard-library only), so the cursor
here gathers what it is given and runs it on the server as one transaction when the result is
fetched, ending it with the COMMIT or ROLLBACK the test chose: the library's part (the
statements and reading their answer) is the same as with any DB-API driver."""

import asyncio

import pytest

import taskmanager
from taskmanager.aio import AsyncClient
from conftest import config, sql


class OneTransactionCursor:
    def __init__(self, database, end="COMMIT"):
        self.database, self.end, self.pending, self.executed = database, end, [], []

    def execute(self, statement):
        self.pending.append(statement)
        self.executed.append(statement)

    def fetchone(self):
        *writes, select = self.pending
        self.pending = []
        script = ";\n".join(["START TRANSACTION", *writes, select, self.end]) + ";"
        out = sql(script, self.database).strip().splitlines()
        return tuple(out[-1].split("\t")) if out else None


class AwaitingCursor(OneTransactionCursor):
    async def execute(self, statement):
        super().execute(statement)

    async def fetchone(self):
        return super().fetchone()


def test_commit_makes_a_claimable_task_and_rollback_nothing(client, db_name):
    client.register_type("py.order", {"type": "object"})
    params = {"order": 7, "note": "it's \"quoted\"; DROP TABLE tasks; --"}
    rolled_back = client.enqueue_with(OneTransactionCursor(db_name, "ROLLBACK"), "py.order", params)
    assert rolled_back["deduplicated"] is False
    assert sql("SELECT COUNT(*) FROM tasks", db_name).strip() == "0"
    assert client.claim("w") == []

    cursor = OneTransactionCursor(db_name)
    queued = client.enqueue_with(cursor, "py.order", params, priority=3)
    assert len(cursor.executed) == 3, "the INSERT, its history row, the select"
    assert (queued["type"], queued["status"], queued["deduplicated"]) == ("py.order", "pending", False)
    again = client.enqueue_with(OneTransactionCursor(db_name), "py.order", params)
    assert (again["id"], again["deduplicated"]) == (queued["id"], True)
    [task] = client.claim("w")
    assert (task.id, task.params, task.priority) == (queued["id"], params, 3)
    assert [h["status_change"] for h in client.history(task.id)] == ["created", "claimed"]

    statement = client.enqueue_statement("py.order", {"order": 8})
    assert set(statement) >= {"sql", "dedupe_key", "statements", "select_sql"}
    with pytest.raises(taskmanager.InvalidArgumentError, match="unique_for_seconds"):
        client.enqueue_statement("py.order", {"order": 9}, unique_for_seconds=60)


def test_the_async_client_awaits_an_asyncio_cursor(client, db_name):
    client.register_type("py.order", {"type": "object"})

    async def main():
        async with AsyncClient.open(config(db_name)) as tm:
            first = await tm.enqueue_with(AwaitingCursor(db_name), "py.order", {"order": 1})
            plain = await tm.enqueue_with(OneTransactionCursor(db_name), "py.order", {"order": 1})
            return first, plain

    first, plain = asyncio.run(main())
    assert first["deduplicated"] is False
    assert (plain["id"], plain["deduplicated"]) == (first["id"], True)
