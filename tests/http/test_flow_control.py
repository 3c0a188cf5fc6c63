"""Flow control over real HTTP: pausing and resuming a type, its limits (max_running, rate),
claims that wait for a task (held to the server's cap) and say when a held-back type may start
again, the key every route needs, a 400 naming each bad field, openapi.json; the dashboard's
calls (JSON only, the session's rules) and its buttons in a real browser."""

import concurrent.futures
import time
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as when

from conftest import KEY, original_config
from raw_http import send
from test_api import register
from test_dashboard import browser, shot, sign_in, wait  # noqa: F401 (browser: a fixture)

TYPE = "/api/task-types/email.send"


def db_time(api, seconds):
    """A time `seconds` from now by the database's clock, as "YYYY-MM-DD HH:MM:SS" UTC."""
    return api.sql(f"SELECT DATE_FORMAT(UTC_TIMESTAMP() + INTERVAL {seconds} SECOND, '%Y-%m-%d %H:%i:%s')").strip()


def enqueue(api, n, type="email.send", **options):
    return api.ok("POST", "/api/tasks", {"type": type, "params": {"n": n}, **options}, status=201)["id"]


def nothing_to_claim(api, body=None):
    """Claims, expects the 404, answers its data (next_allowed_at)."""
    status, _, answer = api.call("POST", "/api/tasks/claim", body or {"worker_id": "w"})
    assert status == 404 and "No available tasks" in answer["error"], (status, answer)
    return answer["data"]


def test_every_flow_route_needs_the_key(api):
    register(api)
    for method, path, body in (("POST", TYPE + "/pause", {}), ("POST", TYPE + "/resume", None),
                               ("PUT", TYPE + "/limits", {"max_running": 1})):
        for key in (None, "wrong"):
            assert api.error(method, path, body, key=key, status=401) == "Invalid or missing API key"
    shown = api.ok("GET", TYPE)
    assert (shown["paused"], shown["max_running"], shown["rate"]) == (False, None, None), "nothing changed"


def test_pause_holds_claims_back_and_resume_lets_them_go(api):
    register(api)
    task = enqueue(api, 1)
    paused = api.ok("POST", TYPE + "/pause")
    assert (paused["name"], paused["paused"], paused["paused_until"]) == ("email.send", True, None)
    assert nothing_to_claim(api) == {"next_allowed_at": None}, "paused until resumed: no time to come back"
    # Enqueues go on while it is paused; the type says so.
    enqueue(api, 2)
    shown = api.ok("GET", TYPE)
    assert shown["paused"] is True and shown["is_active"] is True
    assert api.ok("GET", "/api/task-types")["task_types"][0]["paused"] is True
    resumed = api.ok("POST", TYPE + "/resume")
    assert (resumed["paused"], resumed["paused_until"]) == (False, None)
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})["id"] == task

    # Until a time: given in the API's own format or RFC 3339, shown in the API's format, and
    # a claim that finds nothing says when the type starts again.
    until = db_time(api, 3600)
    paused = api.ok("POST", TYPE + "/pause", {"until": until})
    assert (paused["paused"], paused["paused_until"]) == (True, until)
    assert nothing_to_claim(api) == {"next_allowed_at": until}
    later = db_time(api, 7200)
    again = api.ok("POST", TYPE + "/pause", {"until": later.replace(" ", "T") + "Z"})
    assert again["paused_until"] == later
    assert api.ok("POST", TYPE + "/resume")["paused"] is False
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})["params"] == {"n": 2}


def test_limits_hold_claims_to_max_running_and_the_rate(api):
    register(api)
    limited = api.ok("PUT", TYPE + "/limits", {"max_running": 1, "rate": {"limit": 5, "per_seconds": 60, "burst": 2}})
    assert (limited["max_running"], limited["rate"]) == (1, {"limit": 5, "per_seconds": 60, "burst": 2})
    first, _ = enqueue(api, 1), enqueue(api, 2)
    claimed = api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})
    assert claimed["id"] == first
    assert nothing_to_claim(api) == {"next_allowed_at": None}, "a saturated type frees up when a task ends"
    with urllib.request.urlopen(urllib.request.Request(api.base + "/api/metrics", headers={"X-API-Key": KEY})) as resp:
        metrics = resp.read().decode()
    assert 'taskmanager_type_max_running{type="email.send"} 1' in metrics, metrics
    assert 'taskmanager_type_running{type="email.send"} 1' in metrics, metrics

    # A field left out keeps its value; null removes that limit.
    kept = api.ok("PUT", TYPE + "/limits", {"rate": None})
    assert (kept["max_running"], kept["rate"]) == (1, None)
    api.ok("POST", f"/api/tasks/{first}/complete", {"lease_token": claimed["lease_token"], "worker_id": "w"})
    second = api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})
    assert api.ok("PUT", TYPE + "/limits", {})["max_running"] == 1, "an empty body changes nothing"
    assert api.ok("PUT", TYPE + "/limits", {"max_running": None})["max_running"] is None

    # One start an hour: the next claim says when the window lets the next task start.
    api.ok("POST", f"/api/tasks/{second['id']}/complete", {"lease_token": second["lease_token"], "worker_id": "w"})
    register(api, name="hourly.job")
    api.ok("PUT", "/api/task-types/hourly.job/limits", {"rate": {"limit": 1, "per_seconds": 3600}})
    third = enqueue(api, 3, type="hourly.job")
    enqueue(api, 4, type="hourly.job")
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})["id"] == third
    next_allowed = nothing_to_claim(api)["next_allowed_at"]
    assert next_allowed is not None and db_time(api, 3000) < next_allowed <= db_time(api, 3601), next_allowed
    assert api.sql("SELECT COUNT(*) FROM tasks WHERE status = 'pending' AND attempts = 0").strip() == "1", \
        "a limited task stays pending and spends no attempt"


def test_bad_input_is_400_naming_the_field(api):
    register(api)
    for body, field in [
        ({"until": "tomorrow"}, "until"),
        ({"until": 1893456000}, "until"),
        ({"until": "2001-01-01T00:00:00Z"}, "until"),
        ({"until": "2001-01-01 00:00:00"}, "until"),
        ({"untill": "2030-01-01T00:00:00Z"}, "untill"),
    ]:
        assert field in api.error("POST", TYPE + "/pause", body), body
    assert "until" in api.error("POST", TYPE + "/pause", {"until": db_time(api, 400 * 86400)}), "over a year ahead"
    for body, field in [
        ({"max_running": 0}, "max_running"),
        ({"max_running": 100001}, "max_running"),
        ({"max_running": "many"}, "max_running"),
        ({"max_running": 1.5}, "max_running"),
        ({"rate": 5}, "rate"),
        ({"rate": {"per_seconds": 60}}, "rate.limit"),
        ({"rate": {"limit": 0, "per_seconds": 60}}, "rate.limit"),
        ({"rate": {"limit": 5}}, "rate.per_seconds"),
        ({"rate": {"limit": 5, "per_seconds": 0}}, "rate.per_seconds"),
        ({"rate": {"limit": 5, "per_seconds": 31536001}}, "rate.per_seconds"),
        ({"rate": {"limit": 5, "per_seconds": 60, "burst": -1}}, "rate.burst"),
        ({"rate": {"limit": 5, "per_seconds": 60, "brust": 1}}, "rate.brust"),
        ({"max_runing": 3}, "max_runing"),
    ]:
        assert field in api.error("PUT", TYPE + "/limits", body), body
    for wait_seconds in (-1, 61, "soon", True, [1]):
        assert "wait_seconds" in api.error("POST", "/api/tasks/claim", {"worker_id": "w", "wait_seconds": wait_seconds})
    shown = api.ok("GET", TYPE)
    assert (shown["paused"], shown["max_running"], shown["rate"]) == (False, None, None), "nothing changed"
    for method, path in (("POST", "/pause"), ("POST", "/resume"), ("PUT", "/limits")):
        api.error(method, "/api/task-types/no.such.type" + path, {}, status=404)
    assert api.call("GET", TYPE + "/pause")[0] == 405


def test_a_claim_waits_for_a_task_that_becomes_runnable(api):
    register(api)
    # Due in two seconds: a claim that does not wait finds nothing, one that waits gets it.
    task = enqueue(api, 1, delay_seconds=2)
    nothing_to_claim(api)
    claimed = api.ok("POST", "/api/tasks/claim", {"worker_id": "w", "wait_seconds": 15})
    assert claimed["id"] == task
    assert api.ok("GET", f"/api/tasks/{task}")["status"] == "claimed"


def test_a_task_enqueued_while_a_claim_waits_is_handed_to_it(database, start):
    api = start(original_config(database))
    # The producer is a server of its own: PHP's built-in server may hand a second connection
    # to the worker busy with the waiting claim, which would hold the enqueue until it ends.
    producer = start(original_config(database))
    register(api)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(api.call, "POST", "/api/tasks/claim", {"worker_id": "w", "wait_seconds": 15})
        # Until the task exists the claim cannot end with it; whenever it is enqueued, the
        # waiting claim (or, had it not begun yet, the claim itself) must hand it out.
        task = enqueue(producer, 1)
        status, _, answer = waiting.result(timeout=30)
    assert status == 200 and answer["data"]["id"] == task, answer


def test_the_wait_is_held_to_the_servers_cap(database, start):
    capped = start(original_config(database, CLAIM_MAX_WAIT_SECONDS=1))
    register(capped)
    began = time.monotonic()
    nothing_to_claim(capped, {"worker_id": "w", "wait_seconds": 60})
    took = time.monotonic() - began
    assert 0.9 <= took < 10, f"asked 60 s, the cap is 1 s: took {took:.1f} s"
    _, _, doc = capped.call("GET", "/api/openapi.json")
    wait_field = doc["paths"]["/tasks/claim"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["wait_seconds"]
    assert "cap of 1 seconds" in wait_field["description"] and wait_field["maximum"] == 60
    broken = start(original_config(database, CLAIM_MAX_WAIT_SECONDS="soon"))
    assert "configuration" in broken.error("GET", "/api/task-types", status=500)


def test_openapi_describes_the_flow_routes(api):
    _, _, doc = api.call("GET", "/api/openapi.json")
    assert "post" in doc["paths"]["/task-types/{name}/pause"] and "post" in doc["paths"]["/task-types/{name}/resume"]
    limits = doc["paths"]["/task-types/{name}/limits"]["put"]
    assert limits["security"] == [{"apiKey": []}]
    properties = limits["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(properties) == {"max_running", "rate"}
    assert set(properties["rate"]["properties"]) == {"limit", "per_seconds", "burst"}
    pause = doc["paths"]["/task-types/{name}/pause"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(pause["properties"]) == {"until"}
    claim = doc["paths"]["/tasks/claim"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "cap of 20 seconds" in claim["properties"]["wait_seconds"]["description"]


def test_the_dashboard_calls_follow_the_session_rules(database, start, api):
    register(api)
    # Without a dashboard password the key opens the dashboard: its calls work with it.
    assert api.ok("POST", "/dashboard/api/types/pause/email.send", {})["paused"] is True
    stats = api.ok("GET", "/dashboard/api/stats")
    assert stats["flow"]["email.send"]["paused"] is True
    assert api.ok("POST", "/dashboard/api/types/resume/email.send", {})["paused"] is False
    limited = api.ok("POST", "/dashboard/api/types/limits/email.send", {"max_running": 2})
    assert limited["max_running"] == 2
    assert "max_running" in api.error("POST", "/dashboard/api/types/limits/email.send", {"max_running": 0})
    assert "until" in api.error("POST", "/dashboard/api/types/pause/email.send", {"until": "never"})
    # Actions are JSON only: a form another site could post is refused.
    form = send(api.base, "POST", "/dashboard/api/types/pause/email.send",
                {"X-API-Key": KEY, "Content-Type": "application/x-www-form-urlencoded"}, "")
    assert form.status == 400 and "JSON" in form.json()["error"]
    # With its own password the dashboard does not take the key.
    protected = start(original_config(database, DASHBOARD_PASSWORD="dash-pass"))
    assert protected.call("POST", "/dashboard/api/types/pause/email.send", {})[0] == 401
    assert api.ok("GET", TYPE)["paused"] is False


def test_the_dashboard_pauses_resumes_and_limits_a_type(api, browser):
    register(api)
    register(api, name="report.daily", version="1")
    enqueue(api, 1)
    sign_in(api, browser)
    browser.get(api.base + "/dashboard#/types")
    row = "tr[data-type='email.send']"

    # Pause, after confirming: the button turns to Resume, the flow column and the API agree.
    wait(browser, when.element_to_be_clickable((By.CSS_SELECTOR, row + " button.flow-toggle"))).click()
    wait(browser, when.alert_is_present()).accept()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, row + " button.flow-toggle").text == "Resume")
    assert browser.find_element(By.CSS_SELECTOR, row + " td.flow").text == "paused"
    assert api.ok("GET", TYPE)["paused"] is True
    # Dismissing the confirmation changes nothing.
    browser.find_element(By.CSS_SELECTOR, "tr[data-type='report.daily'] button.flow-toggle").click()
    wait(browser, when.alert_is_present()).dismiss()
    assert api.ok("GET", "/api/task-types/report.daily")["paused"] is False

    # The overview marks it and lists it with what runs.
    browser.get(api.base + "/dashboard#/overview")
    state = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-flow='email.send'] .flow-state").text)
    assert state == "paused"
    assert browser.find_element(By.CSS_SELECTOR, "#view .badge.paused").text == "paused"
    shot(browser, "flow-overview")

    # Limits: open the editor, a bad value is refused in the status line naming the field,
    # then saved.
    browser.get(api.base + "/dashboard#/types")
    wait(browser, when.element_to_be_clickable((By.CSS_SELECTOR, row + " button.flow-edit"))).click()
    field = wait(browser, when.presence_of_element_located((By.ID, "limits-max-running")))
    field.send_keys("0")
    browser.find_element(By.ID, "limits-save").click()
    wait(browser, when.alert_is_present()).accept()
    wait(browser, lambda d: "max_running" in d.find_element(By.ID, "status").text)
    assert api.ok("GET", TYPE)["max_running"] is None
    field.clear()
    field.send_keys("3")
    browser.find_element(By.ID, "limits-rate-limit").send_keys("10")
    browser.find_element(By.ID, "limits-rate-per").send_keys("60")
    browser.find_element(By.ID, "limits-rate-burst").send_keys("2")
    shot(browser, "flow-limits-editor")
    browser.find_element(By.ID, "limits-save").click()
    wait(browser, when.alert_is_present()).accept()
    wait(browser, lambda d: "max 3 running" in d.find_element(By.CSS_SELECTOR, row + " td.flow").text)
    assert browser.find_element(By.CSS_SELECTOR, row + " td.flow").text == "paused, max 3 running, 10 per 60 s + 2 burst"
    shown = api.ok("GET", TYPE)
    assert (shown["max_running"], shown["rate"]) == (3, {"limit": 10, "per_seconds": 60, "burst": 2})
    # The overview shows the limits with what runs and what started in the window.
    browser.get(api.base + "/dashboard#/overview")
    running = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-flow='email.send'] .flow-running").text)
    assert running == "0 / 3"
    assert browser.find_element(By.CSS_SELECTOR, "[data-flow='email.send'] .flow-rate").text == "0 / 12 per 60 s"
    browser.get(api.base + "/dashboard#/types")
    wait(browser, when.element_to_be_clickable((By.CSS_SELECTOR, row + " button.flow-toggle")))

    # Resume, after confirming.
    browser.find_element(By.CSS_SELECTOR, row + " button.flow-toggle").click()
    wait(browser, when.alert_is_present()).accept()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, row + " button.flow-toggle").text == "Pause")
    assert api.ok("GET", TYPE)["paused"] is False
    shot(browser, "flow-types")
