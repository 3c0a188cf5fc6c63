"""The schedule routes of php/api over real HTTP: put (created, saved again, a bad field named
in the 400), list with next run times, get, a tick that enqueues a missed occurrence, delete,
and the key they all need; the dashboard's schedules page."""

from selenium.webdriver.common.by import By

from test_api import register
from test_dashboard import browser, shot, sign_in, wait  # noqa: F401 (browser: a fixture)


def test_schedule_routes_round_trip(api):
    register(api)
    body = {"type": "email.send", "cron": "0 * * * *", "timezone": "Europe/Prague",
            "params": {"n": 1}, "misfire": "once", "misfire_grace_seconds": 0}
    made = api.ok("PUT", "/api/schedules/hourly", body, status=201)
    assert (made["name"], made["type"], made["misfire"], made["changed"]) == ("hourly", "email.send", "once", True)
    assert made["next_run_at"].endswith(":00:00")
    again = api.ok("PUT", "/api/schedules/hourly", body)
    assert (again["changed"], again["next_run_at"]) == (False, made["next_run_at"])

    assert "timezone" in api.error("PUT", "/api/schedules/bad", dict(body, timezone="Mars/Base"))
    assert "cron" in api.error("PUT", "/api/schedules/bad", dict(body, cron="every hour"))
    assert "misfire" in api.error("PUT", "/api/schedules/bad", dict(body, misfire="often"))
    assert "cron" in api.error("PUT", "/api/schedules/bad", {"type": "email.send"})
    api.error("PUT", "/api/schedules/bad", dict(body, type="no.such.type"), status=404)
    assert api.call("GET", "/api/schedules", key=None)[0] == 401
    assert api.call("POST", "/api/schedules/tick", key=None)[0] == 401

    listed = api.ok("GET", "/api/schedules")
    assert listed["count"] == 1 and listed["schedules"][0]["next_run_at"] == made["next_run_at"]
    assert api.ok("GET", "/api/schedules/hourly")["id"] == made["id"]

    # The ticker was away three hours: `once` enqueues the latest occurrence, once.
    api.sql("UPDATE task_schedules SET next_run_at = "
            "DATE_FORMAT(NOW(6) - INTERVAL 3 HOUR, '%Y-%m-%d %H:00:00')")
    report = api.ok("POST", "/api/schedules/tick")
    assert len(report["enqueued"]) == 1 and report["errors"] == []
    task = api.ok("GET", "/api/tasks/%d" % report["enqueued"][0]["task_id"])
    assert (task["type"], task["params"]) == ("email.send", {"n": 1})
    assert api.ok("POST", "/api/schedules/tick")["enqueued"] == []

    assert api.ok("DELETE", "/api/schedules/hourly")["name"] == "hourly"
    api.error("GET", "/api/schedules/hourly", status=404)
    api.error("DELETE", "/api/schedules/hourly", status=404)
    assert api.ok("GET", "/api/schedules")["count"] == 0


def test_openapi_describes_the_schedule_routes(api):
    _, _, doc = api.call("GET", "/api/openapi.json")
    assert set(doc["paths"]["/schedules/{name}"]) == {"get", "put", "delete"}
    assert "post" in doc["paths"]["/schedules/tick"]


def test_the_dashboard_shows_each_schedule_with_its_next_run(api, browser):
    register(api)
    made = api.ok("PUT", "/api/schedules/nightly", {"type": "email.send", "cron": "0 3 * * *",
                                                    "timezone": "Europe/Prague"}, status=201)
    api.ok("PUT", "/api/schedules/paused", {"type": "email.send", "cron": "0 4 * * *", "enabled": False},
           status=201)
    sign_in(api, browser)
    browser.get(api.base + "/dashboard#/schedules")
    cell = '[data-schedule="{}"] .next-run'
    assert wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, cell.format("nightly")).text) \
        == made["next_run_at"].replace(" ", "T") + ".000000Z"
    assert browser.find_element(By.CSS_SELECTOR, cell.format("paused")).text == "disabled"
    shot(browser, "schedules")
