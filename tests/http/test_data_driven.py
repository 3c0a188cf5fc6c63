"""Endpoints published as rows of the original's api_endpoints / api_validations tables, over
real HTTP: the original's seed rows (answered by the built-in routes), a user's own rows of
each action type with validations, and hostile paths, templates and values."""

import json
import subprocess
import urllib.parse

import pytest

from conftest import HOST, PASS, PORT, ROOT, USER, original_config

TABLES = ROOT / "php/api/sql/api_endpoints.sql"


def lit(value):
    """A SQL literal for test setup that needs no escaping: text as a utf8mb4 hex literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return "_utf8mb4 X'" + text.encode().hex() + "'"


class Published:
    def __init__(self, api):
        self.api = api

    def add(self, path, method, action, config, validations=(), active=True):
        """Inserts an endpoint row (and its validations) as an operator would; -> its id."""
        self.api.sql(
            "INSERT INTO api_endpoints (path, method, description, action_type, action_config_json, is_active) "
            f"VALUES ({lit(path)}, {lit(method)}, 'test', {lit(action)}, {lit(config)}, {lit(active)})")
        endpoint = int(self.api.sql(f"SELECT id FROM api_endpoints WHERE path = {lit(path)} AND method = {lit(method)}"))
        for name, source, rules, message in validations:
            self.api.sql(
                "INSERT INTO api_validations (endpoint_id, param_name, param_source, validation_rules_json, error_message) "
                f"VALUES ({endpoint}, {lit(name)}, {lit(source)}, {lit(rules)}, {lit(message)})")
        return endpoint


@pytest.fixture
def published(api):
    with open(TABLES) as ddl:
        subprocess.run(["mariadb", "-h", HOST, "-P", str(PORT), "-u", USER, api.database],
                       stdin=ddl, env={"MYSQL_PWD": PASS, "PATH": "/usr/bin:/bin"}, check=True)
    api.sql("CREATE TABLE widgets (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL UNIQUE, "
            "color VARCHAR(20), size INT, meta TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
    api.sql("INSERT INTO widgets (name, color, size, meta) VALUES ('bolt', 'red', 3, '{\"k\": {}}'), "
            "('nut', 'blue', 5, NULL), ('gear', 'red', 8, NULL)")
    return Published(api)


def widgets(api):
    return api.sql("SELECT name, color, size FROM widgets ORDER BY id").split("\n")[:-1]


# The original's seed rows, as an upgraded database holds them (the paths its built-in code served).
SEED = [
    ("/health", "GET", "custom", {"handler": "health_check", "response": {"status": "healthy", "timestamp": "{{NOW}}"}}),
    ("/task-types/register", "POST", "custom", {"handler": "task_type_register", "required_fields": ["name", "version", "param_schema"]}),
    ("/task-types/:name", "GET", "query", {
        "table": "task_types", "where": {"name": "{{path.name}}"}, "transform": {"param_schema": "json_decode"},
        "select": ["id", "name", "version", "param_schema_json as param_schema", "is_active", "created_at", "updated_at"]}),
    ("/task-types", "GET", "query", {
        "table": "task_types tt", "joins": [{"type": "LEFT", "table": "task_type_usage ttu", "on": "tt.id = ttu.type_id"}],
        "select": ["tt.id", "tt.name", "tt.version", "tt.is_active", "tt.created_at", "tt.updated_at",
                   "COALESCE(ttu.usage_count, 0) as usage_count", "ttu.last_used_at"],
        "where_optional": {"tt.is_active": "{{query.active_only}}"},
        "order": "{{query.sort_by:usage_count}} {{query.sort_order:DESC}}"}),
    ("/tasks", "POST", "custom", {"handler": "task_create", "required_fields": ["type", "params"]}),
    ("/tasks/claim", "POST", "custom", {"handler": "task_claim", "required_fields": ["worker_id", "task_type_id"]}),
    ("/tasks/:id/complete", "POST", "custom", {"handler": "task_complete", "required_fields": ["worker_id", "success"]}),
    ("/tasks/:id/progress", "POST", "custom", {"handler": "task_update_progress", "required_fields": ["worker_id", "progress"]}),
    ("/tasks/:id", "GET", "query", {
        "table": "tasks t", "joins": [{"type": "INNER", "table": "task_types tt", "on": "t.type_id = tt.id"}],
        "select": ["t.id", "tt.name as type", "t.status", "t.params_json as params", "t.result_json as result",
                   "t.error_message", "t.priority", "t.progress", "t.attempts", "t.claimed_by", "t.claimed_at",
                   "t.completed_at", "t.created_at"],
        "where": {"t.id": "{{path.id}}"}, "transform": {"params": "json_decode", "result": "json_decode"}}),
    ("/tasks", "GET", "query", {
        "table": "tasks t", "joins": [{"type": "INNER", "table": "task_types tt", "on": "t.type_id = tt.id"}],
        "select": ["t.id", "tt.name as type", "t.status", "t.priority", "t.progress", "t.attempts", "t.claimed_by",
                   "t.created_at", "t.completed_at"],
        "where_optional": {"t.status": "{{query.status}}", "tt.name": "{{query.type}}"},
        "order": "t.created_at DESC", "limit": "{{query.limit:50}}", "offset": "{{query.offset:0}}"}),
]
SEED_VALIDATIONS = {
    ("/tasks", "POST"): [("type", "body", {"type": "string", "required": True, "minLength": 1}, "Task type is required"),
                         ("params", "body", {"type": "object", "required": True}, "Task parameters are required")],
    ("/tasks/claim", "POST"): [("worker_id", "body", {"type": "string", "required": True, "minLength": 1}, "Worker ID is required")],
    ("/tasks/:id/progress", "POST"): [
        ("worker_id", "body", {"type": "string", "required": True, "minLength": 1}, "Worker ID is required"),
        ("progress", "body", {"type": "integer", "required": True, "minimum": 0, "maximum": 100}, "Progress must be between 0 and 100")],
}


def test_the_original_seed_rows_are_answered_by_the_built_in_routes(api, published):
    for path, method, action, config in SEED:
        published.add(path, method, action, config, SEED_VALIDATIONS.get((path, method), ()))
    assert api.ok("GET", "/api/health")["status"] == "healthy"
    api.ok("POST", "/api/task-types/register", {"name": "seed.t", "version": "1", "param_schema": {"type": "object"}}, 201)
    # The seed's listing row has a templated ORDER BY and an expression its checker refused:
    # the built-in route answers, with the shape the original's clients read.
    assert [t["name"] for t in api.ok("GET", "/api/task-types")["task_types"]] == ["seed.t"]
    assert api.ok("GET", "/api/task-types/seed.t")["param_schema"] == {"type": "object"}
    task = api.ok("POST", "/api/tasks", {"type": "seed.t", "params": {}}, 201)
    claimed = api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})
    assert claimed["id"] == task["id"]
    api.ok("POST", f"/api/tasks/{task['id']}/progress", {"worker_id": "w", "progress": 50})
    api.ok("POST", f"/api/tasks/{task['id']}/complete", {"worker_id": "w", "success": True, "result": {"r": 1}})
    got = api.ok("GET", f"/api/tasks/{task['id']}")
    assert got["status"] == "completed" and got["result"] == {"r": 1} and got["params"] == {}
    assert [t["id"] for t in api.ok("GET", "/api/tasks?limit=5")] == [task["id"]]
    # The built-in messages, not the seed validations': the library's routes answered.
    assert api.error("POST", "/api/tasks/claim", {}) == "Missing required field: worker_id"


def test_seed_row_configs_served_at_a_path_of_their_own(api, published):
    """The seed's task row works as a published query; its listing row is refused, as
    configuration, for the templated ORDER BY (the original failed on it at every request)."""
    by_path = {(p, m): (a, c) for p, m, a, c in SEED}
    action, config = by_path[("/tasks/:id", "GET")]
    published.add("/legacy/tasks/:id", "GET", action, config)
    action, config = by_path[("/task-types", "GET")]
    published.add("/legacy/task-types", "GET", action, dict(config, select=["tt.id", "tt.name"]))
    api.ok("POST", "/api/task-types/register", {"name": "legacy.t", "version": "1", "param_schema": {"type": "object"}}, 201)
    task = api.ok("POST", "/api/tasks", {"type": "legacy.t", "params": {"a": [1, {}]}}, 201)
    answer = api.ok("GET", f"/api/legacy/tasks/{task['id']}")
    assert answer["items"][0]["type"] == "legacy.t" and answer["items"][0]["params"] == {"a": [1, {}]}
    assert isinstance(answer["items"][0]["id"], int) and answer["count"] == 1
    error = api.error("GET", "/api/legacy/task-types", status=500)
    assert error.startswith("Endpoint configuration error: invalid ORDER BY") and "templates are not allowed" in error
    assert "endpoint" in api.log.read_text()


def test_query_rows_with_filters_paging_single_and_transforms(api, published):
    published.add("/widgets", "GET", "query", {
        "table": "widgets w", "select": ["w.id", "w.name", "w.color AS colour", "w.size"],
        "where_optional": {"w.color": "{{query.color}}", "w.size >=": "{{query.min_size}}", "w.name LIKE": "{{query.q}}"},
        "order": "w.size DESC, w.id", "limit": "{{query.limit:2}}", "offset": "{{query.offset:0}}",
        "transform": {"name": "uppercase"}})
    published.add("/widgets/:name", "GET", "query", {
        "table": "widgets", "where": {"name": "{{path.name}}"}, "single": True, "transform": {"meta": "json_decode"}})
    page = api.ok("GET", "/api/widgets")
    assert page == {"items": [{"id": 3, "name": "GEAR", "colour": "red", "size": 8},
                              {"id": 2, "name": "NUT", "colour": "blue", "size": 5}], "count": 2}
    assert [w["name"] for w in api.ok("GET", "/api/widgets?limit=10&offset=1")["items"]] == ["NUT", "BOLT"]
    assert [w["name"] for w in api.ok("GET", "/api/widgets?color=red&limit=10")["items"]] == ["GEAR", "BOLT"]
    assert [w["name"] for w in api.ok("GET", "/api/widgets?min_size=5&limit=10")["items"]] == ["GEAR", "NUT"]
    assert [w["name"] for w in api.ok("GET", "/api/widgets?q=%25o%25&limit=10")["items"]] == ["BOLT"]
    # A value holding % compares with LIKE even without the operator, as the original did.
    assert [w["name"] for w in api.ok("GET", "/api/widgets?color=bl%25&limit=10")["items"]] == ["NUT"]
    assert api.ok("GET", "/widgets/bolt")["meta"] == {"k": {}}
    assert api.error("GET", "/widgets/missing", status=404) == "Record not found"


def test_insert_update_delete_rows_with_validations(api, published):
    rules = [("name", "body", {"type": "string", "required": True, "minLength": 2, "maxLength": 10}, "A name is required"),
             ("size", "body", {"type": "integer", "minimum": 1, "maximum": 10}, None),
             ("x-tenant", "header", {"required": True}, None)]
    published.add("/widgets", "POST", "insert", {
        "table": "widgets", "fields": {"name": "{{body.name}}", "color": "{{body.color:green}}", "size": "{{body.size}}",
                                       "meta": "{{body.meta}}"}}, rules)
    published.add("/widgets/:name", "PUT", "update", {"table": "widgets", "set": {"color": "{{body.color}}"},
                                                      "where": {"name": "{{path.name}}"}})
    published.add("/widgets/:name", "DELETE", "delete", {"table": "widgets", "where": {"name": "{{path.name}}"}})
    tenant = {"X-Tenant": "t1"}
    status, _, body = api.call("POST", "/api/widgets", {"name": "cog", "size": 4, "meta": {"a": [1]}}, headers=tenant)
    assert status == 200 and body["data"] == {"id": 4, "affected_rows": 1}
    assert api.sql("SELECT color, meta FROM widgets WHERE name = 'cog'") == 'green\t{"a":[1]}\n'
    # Every failure at once, with the row's own message for a missing required value.
    status, _, body = api.call("POST", "/api/widgets", {"name": "x", "size": "4"})
    assert status == 400 and body["error"] == "Validation failed"
    assert body["details"] == ["Field 'name' must be at least 2 characters", "Field 'size' must be of type integer",
                               "Field 'x-tenant' is required"]
    status, _, body = api.call("POST", "/api/widgets", {"size": 11, "name": "é" * 10}, headers=tenant)
    assert status == 400 and body["details"] == ["Field 'size' must be at most 10"]
    status, _, body = api.call("POST", "/api/widgets", {"size": 2}, headers=tenant)
    assert status == 400 and body["details"] == ["A name is required"]
    # A duplicate name breaks the unique key: 409, and no SQL in the answer.
    status, _, body = api.call("POST", "/api/widgets", {"name": "cog"}, headers=tenant)
    assert status == 409 and "INSERT" not in json.dumps(body) and "Duplicate" not in json.dumps(body)
    assert api.ok("PUT", "/api/widgets/cog", {"color": "black"}) == {"affected_rows": 1}
    assert api.ok("DELETE", "/api/widgets/nut") == {"affected_rows": 1}
    assert api.ok("DELETE", "/api/widgets/nut") == {"affected_rows": 0}
    assert widgets(api) == ["bolt\tred\t3", "gear\tred\t8", "cog\tblack\t4"]


def test_routing_exact_inactive_and_precedence(api, published):
    published.add("/widgets/:name", "GET", "query", {"table": "widgets", "where": {"name": "{{path.name}}"}, "single": True})
    published.add("/widgets/special", "GET", "query", {"table": "widgets", "where": {"name": "gear"}, "single": True},
                  active=False)
    published.add("/widgets/off/:name", "GET", "query", {"table": "widgets"}, active=False)
    # A row for a path the built-in routes serve is never reached; a method they do not
    # serve on that path is the row's.
    published.add("/tasks/:id", "GET", "query", {"table": "widgets", "single": True})
    published.add("/tasks/:id", "DELETE", "delete", {"table": "widgets", "where": {"id": "{{path.id}}"}})
    published.add("/v2/claim", "POST", "custom", {"handler": "task_claim"})
    published.add("/v2/nothing", "POST", "custom", {"handler": "drop_everything"})
    assert api.ok("GET", "/api/widgets/nut")["size"] == 5
    assert api.error("GET", "/api/widgets/special", status=503) == "Endpoint is not active"
    assert api.error("GET", "/api/widgets/off/bolt", status=404) == "Endpoint not found"
    assert api.error("GET", "/api/tasks/1", status=404) == "Task not found"
    assert api.ok("DELETE", "/api/tasks/1") == {"affected_rows": 1}
    assert api.call("PATCH", "/api/tasks/1")[0] == 405
    assert api.error("POST", "/api/v2/claim", {"worker_id": "w"}, status=404) == "No available tasks: there are no tasks to claim"
    assert api.error("POST", "/api/v2/claim", {}) == "Missing required field: worker_id"
    assert api.error("POST", "/api/v2/nothing", status=500).startswith("Endpoint configuration error: unknown custom handler")


def test_only_a_caller_with_the_key_reaches_rows(api, published):
    published.add("/widgets/:name", "DELETE", "delete", {"table": "widgets", "where": {"name": "{{path.name}}"}})
    assert api.error("DELETE", "/api/widgets/bolt", key=None, status=404) == "Endpoint not found"
    assert api.error("DELETE", "/api/widgets/bolt", key="wrong", status=404) == "Endpoint not found"
    assert len(widgets(api)) == 3
    assert api.ok("DELETE", "/api/widgets/bolt") == {"affected_rows": 1}


def test_without_the_tables_nothing_is_published(api):
    assert api.error("GET", "/api/widgets", status=404) == "Endpoint not found"
    assert api.call("DELETE", "/api/tasks")[0] == 405


INJECTIONS = ["x' OR '1'='1", "bolt'; DROP TABLE widgets; --", "bolt`; DROP TABLE widgets; --",
              "1 UNION SELECT 1,2,3,4,5,6", "bolt\\", "\x00", "%", "); DELETE FROM widgets; --", "é' OR 1=1 #"]


def test_hostile_values_in_path_query_and_body_are_only_ever_values(api, published):
    published.add("/widgets/:name", "GET", "query", {"table": "widgets", "select": ["name"], "where": {"name": "{{path.name}}"}})
    published.add("/find", "GET", "query", {"table": "widgets", "select": ["name"], "where_optional": {"color": "{{query.color}}"},
                                            "order": "id"})
    published.add("/widgets", "POST", "insert", {"table": "widgets", "fields": {"name": "{{body.name}}", "meta": "{{body.meta}}"}})
    for i, value in enumerate(INJECTIONS):
        quoted = urllib.parse.quote(value, safe="")
        # `%` in an optional filter is LIKE's wildcard (the original's rule), still a value.
        expected = ["bolt", "nut", "gear"] if value == "%" else []
        assert [w["name"] for w in api.ok("GET", f"/api/find?color={quoted}")["items"]] == expected
        assert api.ok("GET", f"/api/widgets/{quoted}")["items"] == []
        api.ok("POST", "/api/widgets", {"name": f"h{i}", "meta": value})
        assert api.sql(f"SELECT HEX(meta) FROM widgets WHERE name = 'h{i}'").strip() == value.encode().hex().upper()
    # A query value given as a list is refused before any route (the API's rule for every
    # path); a path segment holding an encoded slash is a value.
    assert "given once" in api.error("GET", "/api/find?color[]=red", status=400)
    assert api.ok("GET", "/api/widgets/a%2Fb")["items"] == []
    assert int(api.sql("SELECT COUNT(*) FROM widgets")) == 3 + len(INJECTIONS)


def test_hostile_row_configurations_are_refused_before_any_sql(api, published):
    refused = {
        "/b1": {"table": "widgets`; DROP TABLE widgets; --"},
        "/b2": {"table": "widgets w UNION SELECT 1 FROM task_types t"},
        "/b3": {"table": "{{query.table}}"},
        "/b4": {"table": "widgets", "select": ["name, (SELECT 1)"]},
        "/b5": {"table": "widgets", "select": ["`name`"]},
        "/b6": {"table": "widgets", "where": {"name = name OR 1": "x"}},
        "/b7": {"table": "widgets", "where_optional": {"name LIKE LIKE": "{{query.q:x}}"}},
        "/b8": {"table": "widgets", "order": "{{query.sort_by:id}} {{query.sort_order:DESC}}"},
        "/b9": {"table": "widgets", "order": "id; DROP TABLE widgets"},
        "/b10": {"table": "widgets w", "joins": [{"type": "INNER", "table": "tasks t", "on": "t.id = w.id OR 1 = 1"}]},
        "/b11": {"table": "widgets w", "joins": [{"type": "OUTER", "table": "tasks t", "on": "t.id = w.id"}]},
        "/b12": {"table": "widgets_created"},
        "/b13": {"table": "widgets", "where": {"name": "{{query.a}} {{query.b}}"}},
        "/b14": {"table": "widgets", "where": {"name": "{{secrets.key}}"}},
    }
    for path, config in refused.items():
        published.add(path, "GET", "query", config)
    published.add("/b15", "POST", "delete", {"table": "widgets"})
    published.add("/b16", "POST", "update", {"table": "widgets", "set": {"color": "x"}})
    published.add("/b17", "POST", "insert", {"table": "widgets", "fields": {"name`) VALUES ('x'); --": "y"}})
    published.add("/b18", "POST", "drop", {"table": "widgets"})
    for path in list(refused) + ["/b15", "/b16", "/b17", "/b18"]:
        method = "GET" if path in refused else "POST"
        error = api.error(method, path + "?table=widgets&q=x&a=1&b=2", {} if method == "POST" else None, status=500)
        assert error.startswith("Endpoint configuration error: "), (path, error)
        assert "DROP" not in error and "SELECT" not in error, (path, error)
    assert widgets(api) == ["bolt\tred\t3", "nut\tblue\t5", "gear\tred\t8"]


def test_templates_for_missing_values_and_oversized_limits(api, published):
    published.add("/w", "GET", "query", {"table": "widgets", "select": ["name"], "where": {"color": "{{query.color}}"},
                                         "where_optional": {"size": "{{body.size}}"}, "order": "id",
                                         "limit": "{{query.limit:1000}}", "offset": "{{query.offset}}"})
    published.add("/w", "POST", "insert", {"table": "widgets", "fields": {"name": "{{body.name}}", "size": "{{body.a.b.c:7}}",
                                                                          "color": "{{headers.x-colour}}"}})
    # A missing value in `where` matches nothing (it is NULL), never every row.
    assert api.ok("GET", "/api/w?offset=0")["items"] == []
    assert [w["name"] for w in api.ok("GET", "/api/w?color=red&offset=1")["items"]] == ["gear"]
    for bad in ["-1", "1001", "99999999999999999999999", "1e3", "abc", "1%20OR%201", ""]:
        status, _, body = api.call("GET", f"/api/w?color=red&offset=0&limit={bad}")
        assert status == 400 and body["error"] == "Invalid limit: must be an integer from 0 to 1000", (bad, body)
    status, _, body = api.call("GET", "/api/w?color=red&offset=1000001")
    assert status == 400 and body["error"].startswith("Invalid offset")
    # A missing offset with no default resolves to null: refused, not read as 0 or as SQL.
    assert api.call("GET", "/api/w?color=red")[0] == 400
    status, _, body = api.call("POST", "/api/w", {"name": "plain"}, headers={"X-Colour": "teal"})
    assert status == 200, body
    assert api.sql("SELECT color, size FROM widgets WHERE name = 'plain'") == "teal\t7\n"
    status, _, body = api.call("POST", "/api/w", {"name": None})
    assert status == 409 and body["error"].startswith("Conflict"), body
    status, _, body = api.call("POST", "/api/w", {"name": "big", "a": {"b": {"c": "not a number"}}})
    assert status == 400 and body["error"] == "A value does not fit its column", body


def test_connection_settings_from_the_environment(published, start):
    """Without DB_* constants the rows are read with the TASKMANAGER_* settings the library uses."""
    published.add("/widgets", "GET", "query", {"table": "widgets", "select": ["name"], "order": "id"})
    config = original_config(published.api.database, DB_HOST=None, DB_NAME=None, DB_USER=None, DB_PASS=None)
    url = f"mysql://{urllib.parse.quote(USER)}:{urllib.parse.quote(PASS)}@{HOST}:{PORT}/{published.api.database}"
    for env in [{"TASKMANAGER_DATABASE_URL": url},
                {"TASKMANAGER_DB_HOST": f"{HOST}:{PORT}", "TASKMANAGER_DB_NAME": published.api.database,
                 "TASKMANAGER_DB_USER": USER, "TASKMANAGER_DB_PASS": PASS}]:
        server = start(config, env)
        assert [w["name"] for w in server.ok("GET", "/api/widgets")["items"]] == ["bolt", "nut", "gear"]
        assert server.ok("GET", "/api/health")["database"] == "connected"
