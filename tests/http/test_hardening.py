"""The HTTP layer's own robustness, as an outside review probed it, over real HTTP: body size
before decoding, headers on every answer, HEAD, array and over-wide parameters, the API's own
wording instead of the library's, `{}` kept as `{}`, and what the Apache config serves."""

import re
from pathlib import Path

from conftest import KEY, ROOT
from raw_http import send

KEYED = {"X-API-Key": KEY}


def register(api, schema=None, name="t"):
    return api.ok("POST", "/api/task-types/register",
                  {"name": name, "version": "1", "param_schema": schema if schema is not None else {}}, status=201)


def test_nosniff_on_every_answer_and_no_x_powered_by(api):
    register(api)
    answers = [send(api.base, method, path, headers) for method, path, headers in (
        ("GET", "/health", {}), ("GET", "/tasks", {}), ("GET", "/tasks", KEYED), ("GET", "/nowhere", KEYED),
        ("DELETE", "/tasks", KEYED), ("OPTIONS", "/tasks", {}), ("GET", "/metrics", KEYED),
        ("GET", "/openapi.json", KEYED), ("GET", "/dashboard", {}), ("GET", "/dashboard/app.js", {}),
        ("POST", "/tasks", KEYED),
    )]
    for answer in answers:
        assert answer.header("X-Content-Type-Options") == "nosniff", answer.status
        assert answer.header("X-Powered-By") is None


def test_head_health_is_200_without_a_body(api):
    answer = send(api.base, "HEAD", "/health")
    assert answer.status == 200 and answer.body == b""
    assert send(api.base, "HEAD", "/tasks", KEYED).status == 200
    assert send(api.base, "HEAD", "/tasks").status == 401


def test_a_large_body_is_refused_before_it_is_decoded(api):
    register(api)
    body = b'{"type": "t", "params": {"items": [' + b",".join([b'{"n": 1}'] * 400_000) + b"]}}"
    assert len(body) > 3_000_000
    answer = send(api.base, "POST", "/tasks", {**KEYED, "Content-Type": "application/json"}, body)
    assert answer.status == 413, answer.body[:200]
    assert answer.json()["message"] == "Request body exceeds maximum allowed size of 2 MB"
    assert "Allowed memory size" not in Path(api.log).read_text()
    assert send(api.base, "GET", "/health").status == 200


def test_array_query_parameters_are_400(api):
    for path in ("/tasks?status[]=pending", "/tasks?limit[]=1", "/task-types?active_only[x]=1",
                 "/dashboard/api/tasks?status[]=x"):
        answer = send(api.base, "GET", path, KEYED)
        assert answer.status == 400, (path, answer.body)
        assert "must be given once, as a single value" in answer.json()["error"]


def test_integers_beyond_64_bits_are_refused_and_64_bit_ones_kept_exactly(api):
    register(api)
    for raw in ('{"type": "t", "params": {"n": 18446744073709551616}}',
                '{"type": "t", "params": {"n": -9223372036854775809}}',
                '{"type": "t", "params": {"deep": [1, {"n": 123456789012345678901234567890}]}}',
                '{"type": "t", "params": {}, "priority": 99999999999999999999}'):
        answer = send(api.base, "POST", "/tasks", {**KEYED, "Content-Type": "application/json"}, raw)
        assert answer.status == 400 and "64 bits" in answer.json()["error"], raw
    # Wide digits in a string where an integer is expected are refused too, not saturated.
    assert api.error("POST", "/api/tasks/claim", {"worker_id": "w", "task_type_id": "9" * 25}) \
        == "task_type_id must be a positive integer"
    assert api.error("GET", "/api/tasks?limit=" + "9" * 25).startswith("Invalid limit")
    raw = ('{"type": "t", "params": {"max": 9223372036854775807, "min": -9223372036854775808, '
           '"text": "123456789012345678901234567890", "float": 1.123456789012345678901, "e": 1e400000000000000000000}}')
    answer = send(api.base, "POST", "/tasks", {**KEYED, "Content-Type": "application/json"},
                  raw.replace(', "e": 1e400000000000000000000', ""))
    assert answer.status == 201, answer.body
    task = api.ok("GET", f"/api/tasks/{answer.json()['data']['id']}")
    assert task["params"]["max"] == 9223372036854775807 and task["params"]["min"] == -9223372036854775808
    assert task["params"]["text"] == "123456789012345678901234567890"


def test_the_library_wording_never_reaches_clients(api):
    register(api)
    bodies = [
        ("/api/tasks", {"type": "t", "priority": 3_000_000_000}),
        ("/api/tasks", {"type": "t", "priority": "9999999999"}),
        ("/api/tasks", {"type": "t", "max_attempts": "x"}),
        ("/api/tasks", {"type": "t", "max_attempts": 99_999_999_999}),
        ("/api/tasks", {"type": "t", "delay_seconds": "soon"}),
        ("/api/tasks", {"type": "t", "run_at": {}}),
        ("/api/tasks", {"type": "t", "dedupe_key": 5}),
        ("/api/tasks", {"type": "t", "dedupe_scope": "sometimes"}),
        ("/api/tasks/claim", {"worker_id": "w", "lease_seconds": 99_999_999_999}),
        ("/api/tasks/claim", {"worker_id": "w", "lease_seconds": 0}),
    ]
    for path, body in bodies:
        status, _, answer = api.call("POST", path, body)
        text = answer["error"]
        assert status == 400, (body, answer)
        assert not re.search(r"expected [iuf]\d|options_json|invalid type|unknown variant|wrong shape", text), text
        field = next(k for k in body if k not in ("type", "worker_id"))
        assert field in text, (field, text)


def test_empty_objects_in_schemas_come_back_as_objects(database, api):
    schema = {"type": "object", "properties": {"meta": {}, "tags": {"type": "array", "items": {}}},
              "additionalProperties": {}, "$defs": {}, "required": []}
    register(api, schema, name="shaped")
    register(api, {}, name="open")
    # Parsed, `{}` is a dict and `[]` a list: the comparison tells them apart.
    assert api.ok("GET", "/api/task-types/shaped")["param_schema"] == schema
    listed = {t["name"]: t["param_schema"] for t in api.ok("GET", "/api/task-types")["task_types"]}
    assert listed == {"shaped": schema, "open": {}}
    assert api.ok("GET", "/api/task-types/open")["param_schema"] == {}
    keyed = send(api.base, "GET", "/dashboard/api/types", KEYED).json()["data"]
    assert {t["name"]: t["param_schema"] for t in keyed} == listed


def test_the_apache_config_serves_only_index_php(tmp_path):
    # Every path goes to index.php, which serves the dashboard's assets itself: no file of the
    # directory (config.php, config.php~, .git, the sources) is served by the web server.
    htaccess = (ROOT / "php/api/.htaccess").read_text()
    rules = [line.strip() for line in htaccess.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "RewriteRule ^ index.php [QSA,L]" in rules
    assert not any("!-f" in rule or "!-d" in rule for rule in rules), "no file is served as itself"
    assert "Require all denied" in rules and '<Files "index.php">' in rules
