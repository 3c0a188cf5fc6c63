"""Every route of the original HTTP API, served by php/api on the library, over real HTTP."""

import concurrent.futures
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import KEY, original_config

HERE = Path(__file__).resolve().parent
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "to": {"type": "string"}}}


def register(api, name="email.send", version="1.0.0", schema=SCHEMA):
    return api.ok("POST", "/api/task-types/register",
                  {"name": name, "version": version, "param_schema": schema}, status=201)


# -- serving, auth, CORS -------------------------------------------------------------------------

def test_health_needs_no_key_and_reports_the_database(api):
    status, headers, body = api.call("GET", "/health", key=None)
    assert status == 200 and body["data"] == {"status": "healthy", "database": "connected"}
    assert headers["Content-Type"] == "application/json"
    assert isinstance(body["timestamp"], int) and abs(body["timestamp"] - time.time()) < 60


def test_every_other_route_needs_the_key_compared_exactly(api):
    for key in (None, "", "wrong", KEY + "x", KEY[:-1]):
        assert api.error("GET", "/api/task-types", key=key, status=401) == "Invalid or missing API key"
    assert api.ok("GET", "/api/task-types")["count"] == 0


def test_an_empty_key_turns_auth_off_and_no_key_at_all_is_a_server_error(database, start):
    open_api = start(original_config(database, API_KEY=""))
    assert open_api.call("GET", "/tasks", key=None)[0] == 200
    closed = start(original_config(database, API_KEY=None))
    text = closed.error("GET", "/tasks", key=None, status=500)
    assert "no API key is configured" in text
    # The environment variable wins over the constant.
    env_key = start(original_config(database, API_KEY="from-file"), env={"TASKMANAGER_API_KEY": "from-env"})
    assert env_key.call("GET", "/tasks", key="from-file")[0] == 401
    assert env_key.call("GET", "/tasks", key="from-env")[0] == 200


def test_cors_and_options(database, api, start):
    status, headers, body = api.call("OPTIONS", "/api/tasks/claim", key=None)
    assert (status, body) == (200, None)
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization, X-API-Key"
    listed = start(original_config(database, CORS_ALLOWED_ORIGINS=["https://app.example", "https://ops.example"]))
    _, headers, _ = listed.call("GET", "/health", headers={"Origin": "https://ops.example"})
    assert headers["Access-Control-Allow-Origin"] == "https://ops.example" and headers["Vary"] == "Origin"
    _, headers, _ = listed.call("GET", "/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers


def test_paths_work_with_and_without_api_and_unknown_ones_are_404(api):
    register(api, name="api.sync")
    assert api.ok("GET", "/api/task-types/api.sync")["name"] == "api.sync"
    assert api.ok("GET", "/task-types/api.sync")["name"] == "api.sync"
    assert api.error("GET", "/api/nothing/here", status=404) == "Endpoint not found"
    assert api.call("DELETE", "/api/tasks")[0] == 405


def test_a_body_that_is_not_json_is_400(api):
    for raw in (b"{not json", b"[1, 2]", b'"text"'):
        text = api.error("POST", "/api/tasks", raw=raw)
        assert text in ("Invalid JSON in request body", "The request body must be a JSON object")
    assert api.error("POST", "/api/tasks", raw=b"{oops") == "Invalid JSON in request body"


def test_metrics_are_prometheus_text_behind_the_key(api):
    register(api)
    api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": 1}}, status=201)
    assert api.call("GET", "/metrics", key=None)[0] == 401
    req = urllib.request.Request(api.base + "/api/metrics", headers={"X-API-Key": KEY})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    assert 'taskmanager_tasks{type="email.send",status="pending"} 1' in text
    assert "# TYPE taskmanager_oldest_pending_seconds gauge" in text
    # A scraper may send the key as a bearer token instead.
    req = urllib.request.Request(api.base + "/metrics", headers={"Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    assert api.call("GET", "/metrics", key=None, headers={"Authorization": "Bearer wrong"})[0] == 401


def test_openapi_describes_every_route(api):
    status, _, doc = api.call("GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    assert {"/tasks/claim", "/tasks/{id}/complete", "/task-types/{name}", "/health", "/metrics"} <= set(doc["paths"])


# -- task types ----------------------------------------------------------------------------------

def test_type_registration_created_updated_conflict_and_errors(api):
    created = register(api)
    assert created == {"id": created["id"], "name": "email.send", "version": "1.0.0", "created": True}
    assert isinstance(created["id"], int)
    same = api.ok("POST", "/api/task-types/register", {"name": "email.send", "version": "1.0.0", "param_schema": SCHEMA})
    assert same["updated"] is True and same["id"] == created["id"]
    # A new version replaces the schema; the schema may come as a string holding JSON.
    v2 = api.ok("POST", "/api/task-types/register",
                {"name": "email.send", "version": "2.0", "param_schema": json.dumps({"type": "object"})})
    assert v2["version"] == "2.0"
    conflict = api.error("POST", "/api/task-types/register",
                         {"name": "email.send", "version": "2.0", "param_schema": SCHEMA}, status=409)
    assert "2.0" in conflict
    for body, text in [
        ({}, "Missing required field: name"),
        ({"name": "x"}, "Missing required field: version"),
        ({"name": "x", "version": "1"}, "Missing required field: param_schema"),
    ]:
        assert api.error("POST", "/api/task-types/register", body) == text
    bad = api.error("POST", "/api/task-types/register", {"name": "x", "version": "1", "param_schema": {"type": 12}})
    assert "schema" in bad.lower()
    assert "50 characters" in api.error("POST", "/api/task-types/register",
                                        {"name": "x", "version": "v" * 51, "param_schema": {}})


def test_type_get_and_list(api):
    register(api)
    register(api, name="report.monthly", version="0.1")
    api.sql("UPDATE task_types SET is_active = 0 WHERE name = 'report.monthly'")
    one = api.ok("GET", "/api/task-types/email.send")
    assert set(one) == {"id", "name", "version", "param_schema", "is_active", "created_at", "updated_at",
                        "paused", "paused_until", "max_running", "rate"}
    assert one["param_schema"] == SCHEMA and one["is_active"] is True
    assert len(one["created_at"]) == 19 and one["created_at"][10] == " "
    listed = api.ok("GET", "/api/task-types")
    assert listed["count"] == 2
    active = api.ok("GET", "/api/task-types?active_only=true")
    assert [t["name"] for t in active["task_types"]] == ["email.send"] and active["count"] == 1
    assert api.error("GET", "/api/task-types/nope", status=404) == "Task type not found"
    assert api.error("GET", "/api/task-types/" + "x" * 300, status=404) == "Task type not found"


# -- tasks ---------------------------------------------------------------------------------------

def test_create_with_a_unique_window(api):
    register(api)
    body = {"type": "email.send", "params": {"to": "a", "n": 7}, "unique_for_seconds": 3600}
    created = api.ok("POST", "/api/tasks", body, status=201)
    again = api.ok("POST", "/api/tasks", body)
    assert again == {"id": created["id"], "status": "pending", "deduplicated": True}
    # The window is passed by moving the first task's creation back, not by waiting.
    api.sql(f"UPDATE tasks SET created_at = created_at - INTERVAL 3600 SECOND WHERE id = {created['id']}")
    after = api.ok("POST", "/api/tasks", body, status=201)
    assert after["id"] != created["id"]
    for bad in (0, 31_536_001, "x", 1.5):
        message = api.error("POST", "/api/tasks", dict(body, unique_for_seconds=bad))
        assert "unique_for_seconds" in message, message
    _, _, doc = api.call("GET", "/api/openapi.json")
    assert "unique_for_seconds" in str(doc["paths"]["/tasks"])


def test_create_dedupe_and_errors(api):
    register(api)
    created = api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"to": "a", "n": 1}, "priority": 5},
                     status=201)
    assert set(created) == {"id", "type", "status", "priority", "dedupe_key"}
    assert (created["status"], created["priority"], created["type"]) == ("pending", 5, "email.send")
    assert isinstance(created["id"], int)
    again = api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": 1, "to": "a"}})
    assert again == {"id": created["id"], "status": "pending", "deduplicated": True}
    empty = api.ok("POST", "/api/tasks", {"type": "email.send", "params": {}}, status=201)
    assert empty["priority"] == 0
    assert api.error("POST", "/api/tasks", {"type": "nope", "params": {}}, status=404) == "Task type not found"
    assert api.error("POST", "/api/tasks", {"params": {}}) == "Missing required field: type"
    api.sql("UPDATE task_types SET is_active = 0")
    assert api.error("POST", "/api/tasks", {"type": "email.send", "params": {"n": 2}}) == "Task type is not active"
    api.sql("UPDATE task_types SET is_active = 1")
    status, _, body = api.call("POST", "/api/tasks", {"type": "email.send", "params": {"n": "x", "to": 3}})
    assert status == 400 and len(body["details"]) == 2, body
    assert api.error("POST", "/api/tasks", {"type": "email.send", "params": {}, "priority": "high"}) \
        == "priority must be an integer"


def test_claim_shape_errors_and_no_task(api):
    register(api)
    assert api.error("POST", "/api/tasks/claim", {}) == "Missing required field: worker_id"
    assert api.error("POST", "/api/tasks/claim", {"worker_id": "w", "task_type_id": 0}) \
        == "task_type_id must be a positive integer"
    assert api.error("POST", "/api/tasks/claim", {"worker_id": "w", "sort_by": "name"}) \
        == "Invalid sort_by field. Allowed values: created_at, priority, id, attempts"
    assert api.error("POST", "/api/tasks/claim", {"worker_id": "w", "sort_order": "UP"}) \
        == "Invalid sort_order. Allowed values: ASC, DESC"
    status, _, body = api.call("POST", "/api/tasks/claim", {"worker_id": "w"})
    # The original's PHP worker reads "No available tasks" in `error`, its tests "no tasks" in
    # `message`: both readers must find their words.
    assert status == 404 and body["error"] == body["message"]
    assert "No available tasks" in body["error"] and "no tasks" in body["message"]
    task_id = api.ok("POST", "/api/tasks", {"type": "email.send", "params": {}}, status=201)["id"]
    claimed = api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})
    assert set(claimed) == {"id", "type", "params", "priority", "attempts", "lease_token", "lease_expires_at"}
    assert claimed["id"] == task_id and claimed["params"] == {} and claimed["attempts"] == 1
    assert len(claimed["lease_expires_at"]) == 19


def test_claim_orders_and_filters(api):
    register(api)
    other = register(api, name="report.daily", version="1")
    rows = [(1, "2024-01-03 00:00:00", 2), (5, "2024-01-01 00:00:00", 0), (5, "2024-01-02 00:00:00", 1),
            (0, "2024-01-04 00:00:00", 3)]
    ids = []
    for n, (priority, created, attempts) in enumerate(rows):
        ids.append(api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": n}, "priority": priority},
                          status=201)["id"])
        api.sql(f"UPDATE tasks SET created_at = '{created}', attempts = {attempts} WHERE id = {ids[-1]}")
    by = {  # expected first pick for each order
        # created_at order is served by id, which follows insertion (README, Performance): the
        # created_at set by hand above does not reorder the tasks.
        ("created_at", "ASC"): ids[0], ("created_at", "DESC"): ids[3],
        ("priority", "ASC"): ids[3], ("priority", "DESC"): ids[2],  # ties by id, same direction
        ("id", "ASC"): ids[0], ("id", "DESC"): ids[3],
        ("attempts", "ASC"): ids[1], ("attempts", "DESC"): ids[3],
    }
    for (field, order), expected in by.items():
        got = api.ok("POST", "/api/tasks/claim", {"worker_id": "w", "sort_by": field, "sort_order": order})
        assert got["id"] == expected, (field, order, got)
        # Put it back by hand, as scripts do: honoured at once.
        api.sql(f"UPDATE tasks SET status = 'pending', attempts = attempts - 1 WHERE id = {got['id']}")
    # Default: created_at ASC (the first inserted).
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})["id"] == ids[0]
    # Filters: by type id, by LIKE pattern, both.
    report = api.ok("POST", "/api/tasks", {"type": "report.daily", "params": {}}, status=201)["id"]
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w", "task_type_id": other["id"]})["id"] == report
    api.sql(f"UPDATE tasks SET status = 'pending' WHERE id = {report}")
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": "report.%"})["id"] == report
    api.sql(f"UPDATE tasks SET status = 'pending' WHERE id = {report}")
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": "REPORT._aily",
                                               "task_type_id": str(other["id"])})["id"] == report
    assert api.call("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": "nothing%"})[0] == 404
    assert api.call("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": "email%",
                                                 "task_type_id": other["id"]})[0] == 404
    assert api.call("POST", "/api/tasks/claim", {"worker_id": "w", "task_type_id": 987654})[0] == 404
    # An escaped wildcard is literal; a pattern that cannot be read is the caller's error.
    api.sql(f"UPDATE tasks SET status = 'pending' WHERE id = {report}")
    assert api.call("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": "report\\_daily"})[0] == 404
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": "report_daily"})["id"] == report
    assert "ends with the escape character" in api.error("POST", "/api/tasks/claim",
                                                         {"worker_id": "w", "type_pattern": "report\\"})
    assert api.error("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": ""}) \
        == "type_pattern must be 1 to 510 characters, got 0"
    assert api.error("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": 5}) \
        == "type_pattern must be a string"


def test_complete_by_token_by_worker_and_the_errors(api):
    register(api)
    for n in range(3):
        api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": n}}, status=201)
    first = api.ok("POST", "/api/tasks/claim", {"worker_id": "new"})
    done = api.ok("POST", f"/api/tasks/{first['id']}/complete",
                  {"worker_id": "new", "success": True, "result": {"ok": 1}, "lease_token": first["lease_token"]})
    assert done == {"id": first["id"], "status": "completed"}
    # A legacy worker sends no token: its worker id proves ownership.
    second = api.ok("POST", "/api/tasks/claim", {"worker_id": "old"})
    assert api.error("POST", f"/api/tasks/{second['id']}/complete", {"worker_id": "intruder"}, status=403) \
        == "Task is claimed by another worker"
    assert api.error("POST", f"/api/tasks/{second['id']}/complete",
                     {"worker_id": "old", "lease_token": "stale.1"}, status=403) == "Task is claimed by another worker"
    assert api.ok("POST", f"/api/tasks/{second['id']}/progress", {"worker_id": "old", "progress": 60,
                                                                 "message": "resizing"}) == {"id": second["id"], "progress": 60}
    # The message is kept with the progress in the task's history.
    assert api.sql(f"SELECT message FROM task_history WHERE task_id = {second['id']} "
                   "AND status_change = 'progress'").strip() == "progress 60%: resizing"
    assert "message must be a string" in api.error(
        "POST", f"/api/tasks/{second['id']}/progress", {"worker_id": "old", "progress": 61, "message": 5})
    assert api.error("POST", f"/api/tasks/{second['id']}/progress", {"worker_id": "old", "progress": 101}) \
        == "progress must be an integer from 0 to 100"
    assert api.ok("POST", f"/api/tasks/{second['id']}/complete", {"worker_id": "old", "result": [1, 2]}) \
        == {"id": second["id"], "status": "completed"}
    task = api.ok("GET", f"/api/tasks/{second['id']}")
    assert (task["status"], task["result"], task["claimed_by"], task["progress"]) == ("completed", [1, 2], "old", 100)
    third = api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": 9}}, status=201)["id"]
    assert api.error("POST", f"/api/tasks/{third}/complete", {"worker_id": "old"}) == "Task is not in claimed state"
    assert api.error("POST", "/api/tasks/999999/complete", {"worker_id": "old"}, status=404) == "Task not found"
    assert api.error("POST", "/api/tasks/abc/complete", {"worker_id": "old"}) == "Task id must be a positive integer"
    assert api.error("POST", f"/api/tasks/{third}/complete", {}) == "Missing required field: worker_id"


def test_failures_retry_until_max_attempts(api):
    register(api)
    task_id = api.ok("POST", "/api/tasks", {"type": "email.send", "params": {}}, status=201)["id"]
    statuses = []
    for _ in range(3):
        api.sql(f"UPDATE tasks SET run_at = NOW(6) WHERE id = {task_id}")  # skip the backoff
        claimed = api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})
        statuses.append(api.ok("POST", f"/api/tasks/{claimed['id']}/complete",
                               {"worker_id": "w", "success": False, "error": "smtp down"})["status"])
    assert statuses == ["pending", "pending", "failed"]
    task = api.ok("GET", f"/api/tasks/{task_id}")
    assert (task["error_message"], task["attempts"]) == ("smtp down", 3)


def test_get_and_list_tasks(api):
    register(api)
    ids = [api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": n}}, status=201)["id"]
           for n in range(5)]
    task = api.ok("GET", f"/api/tasks/{ids[0]}")
    assert set(task) == {"id", "type", "status", "params", "result", "error_message", "priority", "progress",
                         "attempts", "claimed_by", "claimed_at", "completed_at", "created_at"}
    assert task["params"] == {"n": 0} and task["claimed_at"] is None
    assert api.error("GET", "/api/tasks/424242", status=404) == "Task not found"
    page = api.ok("GET", "/api/tasks?limit=2&offset=1")
    assert [t["id"] for t in page] == [ids[3], ids[2]]
    assert set(page[0]) == {"id", "type", "status", "priority", "progress", "attempts", "claimed_by",
                            "created_at", "completed_at"}
    assert len(api.ok("GET", "/api/tasks")) == 5
    assert api.ok("GET", "/api/tasks?status=completed") == []
    assert len(api.ok("GET", "/api/tasks?type=email.send&status=pending")) == 5
    for bad in ("limit=0", "limit=1001", "limit=x", "offset=-1"):
        assert "Invalid" in api.error("GET", f"/api/tasks?{bad}")


# -- plain SQL, as the original's scripts use it -------------------------------------------------

def test_plain_sql_rows_and_changes_are_honoured_at_once(api):
    type_id = register(api)["id"]
    api.sql("INSERT INTO tasks (type_id, status, params_json, dedupe_key, attempts, created_at) "
            f"VALUES ({type_id}, 'pending', '{{\"n\": 7}}', 'by-hand', 0, NOW())")
    claimed = api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})
    assert claimed["params"] == {"n": 7}
    # Failed by hand: the worker's complete is refused, nothing is claimable.
    api.sql(f"UPDATE tasks SET status = 'failed' WHERE id = {claimed['id']}")
    assert api.error("POST", f"/api/tasks/{claimed['id']}/complete", {"worker_id": "w", "result": 1}) \
        == "Task is not in claimed state"
    assert api.call("POST", "/api/tasks/claim", {"worker_id": "w"})[0] == 404
    # Completed by hand: a complete by the same worker is a repeat (safe to retry), and
    # changes nothing.
    api.sql(f"UPDATE tasks SET status = 'completed' WHERE id = {claimed['id']}")
    assert api.ok("POST", f"/api/tasks/{claimed['id']}/complete", {"worker_id": "w", "result": 2})["status"] \
        == "completed"
    assert api.ok("GET", f"/api/tasks/{claimed['id']}")["result"] is None
    # Claimed by hand for a worker: that worker may finish it.
    api.sql(f"UPDATE tasks SET status = 'claimed', claimed_by = 'hand', claimed_at = NOW() WHERE id = {claimed['id']}")
    assert api.ok("POST", f"/api/tasks/{claimed['id']}/complete", {"worker_id": "hand"})["status"] == "completed"
    # Claimed by hand long ago (no lease of ours): the claim timeout has passed, it runs again.
    api.sql(f"UPDATE tasks SET status = 'claimed', claimed_by = 'gone', lease_expires_at = NULL, "
            f"claimed_at = NOW() - INTERVAL 400 SECOND WHERE id = {claimed['id']}")
    again = api.ok("POST", "/api/tasks/claim", {"worker_id": "w2"})
    assert again["id"] == claimed["id"]
    # Deleting the type takes its tasks and their history.
    api.sql("DELETE FROM task_types WHERE name = 'email.send'")
    assert api.sql("SELECT COUNT(*) FROM tasks").strip() == "0"
    assert api.sql("SELECT COUNT(*) FROM task_history").strip() == "0"
    # Registered again (a new id): enqueue and claim find it at once.
    register(api)
    created = api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": 1}}, status=201)
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w", "type_pattern": "email%"})["id"] == created["id"]


def drain_over_http(api, clients, send_token=False):
    """`clients` threads, worker ids w0, w1, ..., claim and complete tasks over HTTP until a claim
    finds none (404); the ids each one finished. With `send_token` a complete also proves its
    lease token, not only the worker id."""

    def worker(number):
        got = []
        while True:
            status, _, body = api.call("POST", "/api/tasks/claim", {"worker_id": f"w{number}"})
            if status == 404:
                return got
            assert status == 200, body
            task = body["data"]
            got.append(task["id"])
            proof = {"worker_id": f"w{number}"}
            if send_token:
                proof["lease_token"] = task["lease_token"]
            done = api.ok("POST", f"/api/tasks/{task['id']}/complete", proof)
            assert done["status"] == "completed"

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return list(pool.map(worker, range(clients)))


def test_twenty_clients_claiming_at_once_never_share_a_task(database, start):
    api = start(original_config(database), workers=8)
    register(api)
    tasks = 200
    for start_n in range(0, tasks, 50):
        for n in range(start_n, start_n + 50):
            api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": n}}, status=201)

    results = drain_over_http(api, clients=20)
    claimed = [i for r in results for i in r]
    assert len(claimed) == tasks and len(set(claimed)) == tasks
    assert api.sql("SELECT COUNT(*) FROM tasks WHERE status = 'completed'").strip() == str(tasks)


# -- failures never leak ---------------------------------------------------------------------------

def test_a_broken_database_gives_500s_without_sql_or_password(database, start):
    secret = "s3cret-Pw-" + database[-6:]
    wrong = start(original_config(database, DB_PASS=secret, DB_USER="nobody_" + database[-6:]))
    status, _, body = wrong.call("GET", "/health", key=None)
    assert status == 503 and body["data"]["database"] == "unreachable"
    for path in ("/api/task-types", "/api/tasks", "/api/tasks/1"):
        status, _, body = wrong.call("GET", path)
        assert status == 500, (path, body)
        assert secret not in json.dumps(body)
    assert secret not in Path(wrong.log).read_text(), "nor in the server log"
    api = start(original_config(database))
    register(api)
    api.sql("DROP TABLE task_history; RENAME TABLE tasks TO tasks_gone")
    status, _, body = api.call("GET", "/api/tasks")
    text = json.dumps(body)
    assert status == 500 and body["success"] is False, body
    for leak in ("SELECT", "FROM", "tasks_gone", "doesn't exist", "Table", "task_history"):
        assert leak not in text, text


# -- the original's workers, unchanged -----------------------------------------------------------

def run_worker(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout.split("\n")


def test_the_original_php_worker_runs_a_full_job(api):
    register(api)
    register(api, name="report.daily", version="1")
    ids = [api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": n}}, status=201)["id"]
           for n in range(6)]
    other = api.ok("POST", "/api/tasks", {"type": "report.daily", "params": {"n": 1}}, status=201)["id"]
    failing = api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"fail": True}}, status=201)["id"]
    out = run_worker(["php", str(HERE / "legacy_worker.php"), api.base, KEY, "php-legacy", "email%"])
    done = sorted(int(line.split()[1]) for line in out if line.startswith("done"))
    assert done == ids and out[-2] == "idle", out
    assert f"failed {failing} email.send" in out
    for task_id in ids:
        task = api.ok("GET", f"/api/tasks/{task_id}")
        assert (task["status"], task["claimed_by"], task["result"]) \
            == ("completed", "php-legacy", {"doubled": task["params"]["n"] * 2})
    assert api.ok("GET", f"/api/tasks/{other}")["status"] == "pending", "the pattern kept it out"
    assert api.ok("GET", f"/api/tasks/{failing}")["status"] == "pending", "failed once, will retry"


def test_the_original_python_worker_runs_a_full_job(api):
    register(api)
    register(api, name="report.daily", version="1")
    python = sys.executable
    worker = str(HERE / "legacy_worker.py")
    created = run_worker([python, worker, api.base, KEY, "py-legacy", "create", "email.send", "5"])
    created += run_worker([python, worker, api.base, KEY, "py-legacy", "create", "report.daily", "3"])
    ids = sorted(int(line.split()[1]) for line in created if line.startswith("created"))
    assert len(ids) == 8
    out = run_worker([python, worker, api.base, KEY, "py-legacy", "work"])
    done = sorted(int(line.split()[1]) for line in out if line.startswith("done"))
    assert done == ids and out[-2] == "idle", out
    assert api.sql("SELECT COUNT(*) FROM tasks WHERE status = 'completed' AND claimed_by = 'py-legacy'").strip() == "8"
    # Priorities were stored as the producer sent them.
    assert api.sql("SELECT GROUP_CONCAT(DISTINCT priority ORDER BY priority) FROM tasks").strip() == "0,1,2"
