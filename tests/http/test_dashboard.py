"""The web dashboard at /dashboard, in a real browser: headless Chromium driven by Selenium.
Screenshots of every page land in target/dashboard-screenshots/ (kept as CI artifacts)."""

import base64
import json
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as when
from selenium.webdriver.support.ui import WebDriverWait

from conftest import KEY, ROOT, original_config
from raw_http import send

SHOTS = ROOT / "target" / "dashboard-screenshots"


@pytest.fixture
def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=15):
    # Views re-render (the overview every 5 s): an element found a moment ago may be gone.
    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(condition)


def text_of(driver, element_id):
    return wait(driver, lambda d: d.find_element(By.ID, element_id).text)


def shot(driver, name):
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_closed_without_a_secret_and_nothing_shown_before_login(database, start):
    open_api = start(original_config(database, API_KEY=""))
    status, _, page = open_api.raw("/dashboard")
    assert status == 503 and "DASHBOARD_PASSWORD" in page, "no secret configured: the dashboard stays closed"
    api = start(original_config(database, DASHBOARD_PASSWORD="dash-pass"))
    status, headers, page = api.raw("/dashboard")
    assert status == 200 and 'id="login-password"' in page and "total-pending" not in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, _, script = api.raw("/dashboard/app.js")
    assert status == 200 and "dashboard/api/" in script and "http" not in script.split("'use strict'")[1].replace("http://www.w3.org/2000/svg", "")
    assert api.call("GET", "/dashboard/api/stats", key=None)[0] == 401
    # With a dashboard password, the API key does not reach the dashboard: only a session
    # opened with that password does.
    assert api.call("GET", "/dashboard/api/stats")[0] == 401
    assert api.call("POST", "/dashboard/api/bulk", {"action": "cancel", "filter": {"status": "pending"}})[0] == 401
    # Without one, the key is the dashboard's secret, and scripts may send it.
    keyed = start(original_config(database))
    assert keyed.call("GET", "/dashboard/api/stats")[0] == 200


def test_bulk_is_one_library_call_with_its_report(api):
    api.ok("POST", "/api/task-types/register", {"name": "bulk.job", "version": "1", "param_schema": {}}, status=201)
    ids = [api.ok("POST", "/api/tasks", {"type": "bulk.job", "params": {"n": n}}, status=201)["id"] for n in range(3)]
    api.sql(f"UPDATE tasks SET status = 'completed' WHERE id = {ids[0]}")
    dry = api.ok("POST", "/dashboard/api/bulk", {"action": "cancel", "filter": {"type": "bulk.job"}, "dry_run": True})
    assert (dry["dry_run"], dry["changed"], dry["matched"]) == (True, [ids[2], ids[1]], 3)
    assert api.sql("SELECT COUNT(*) FROM tasks WHERE status = 'cancelled'").strip() == "0"
    done = api.ok("POST", "/dashboard/api/bulk", {"action": "cancel", "filter": {"type": "bulk.job"}, "reason": "r"})
    assert done["changed"] == [ids[2], ids[1]]
    assert done["skipped"] == [{"id": ids[0], "code": "TM_CONFLICT",
                                "message": f"task {ids[0]} is completed: cancel needs a pending or claimed task"}]
    assert api.sql(f"SELECT message FROM task_history WHERE task_id = {ids[1]} ORDER BY id DESC LIMIT 1").strip() == "r"
    retried = api.ok("POST", "/dashboard/api/bulk", {"action": "retry", "filter": {"status": "cancelled", "limit": 1}})
    assert retried["changed"] == [ids[2]] and retried["next_before_id"] == ids[2]
    assert "give task ids" in api.error("POST", "/dashboard/api/bulk", {"action": "retry", "filter": {}})


def test_dashboard_in_a_real_browser(api, browser):
    api.ok("POST", "/api/task-types/register", {"name": "email.send", "version": "1.0.0",
                                               "param_schema": {"type": "object"}}, status=201)
    api.ok("POST", "/api/task-types/register", {"name": "report.daily", "version": "1",
                                               "param_schema": {"type": "object"}}, status=201)
    for n in range(3):
        api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": n}}, status=201)
    # One task that fails for good, and one completed, so the chart has bars.
    doomed = api.ok("POST", "/api/tasks", {"type": "report.daily", "params": {"doomed": True}, "max_attempts": 1},
                    status=201)["id"]
    claimed = api.ok("POST", "/api/tasks/claim", {"worker_id": "night-worker", "task_type_id": 2})
    assert claimed["id"] == doomed
    api.ok("POST", f"/api/tasks/{doomed}/complete", {"worker_id": "night-worker", "success": False,
                                                     "error": "report source unreachable"})
    done = api.ok("POST", "/api/tasks/claim", {"worker_id": "day-worker"})
    api.ok("POST", f"/api/tasks/{done['id']}/complete", {"worker_id": "day-worker", "result": {"sent": True}})

    # Closed until signed in; a wrong password is refused. A trailing slash lands on the page
    # itself, where its relative links work.
    browser.get(api.base + "/dashboard/")
    assert browser.current_url == api.base + "/dashboard"
    assert browser.find_elements(By.ID, "login-password") and not browser.find_elements(By.ID, "total-pending")
    shot(browser, "1-login")
    browser.find_element(By.ID, "login-password").send_keys("not-the-key")
    browser.find_element(By.ID, "login-submit").click()
    assert "Wrong password" in text_of(browser, "login-error")
    browser.find_element(By.ID, "login-password").send_keys(KEY)
    browser.find_element(By.ID, "login-submit").click()

    # Overview: the counts, then they change after enqueuing.
    assert text_of(browser, "total-pending") == "2"
    assert text_of(browser, "total-failed") == "1"
    wait(browser, when.presence_of_element_located((By.CSS_SELECTOR, "#throughput-chart rect.completed")))
    # The chart reads without hovering: a scale from 0, a time axis ending now, a legend with
    # what finished in the range (one completed, one failed).
    y_labels = [int(t) for t in wait(browser, lambda d: d.find_element(By.ID, "chart-y").text.split())]
    assert y_labels[0] == 0 and y_labels[-1] >= 1 and y_labels == sorted(y_labels), y_labels
    x_axis = browser.find_element(By.ID, "chart-x").text
    assert x_axis.startswith("−60 min") and x_axis.endswith("now"), x_axis
    legend = browser.find_element(By.ID, "chart-legend").text
    assert "completed (1)" in legend and "failed (1)" in legend, legend
    assert "night-worker" in browser.find_element(By.ID, "view").text
    shot(browser, "2-overview")
    for n in range(3, 7):
        api.ok("POST", "/api/tasks", {"type": "email.send", "params": {"n": n}}, status=201)
    wait(browser, lambda d: d.find_element(By.ID, "total-pending").text == "6", timeout=20)

    # Task list with a filter, then one task.
    browser.find_element(By.ID, "nav-tasks").click()
    wait(browser, when.presence_of_element_located((By.ID, "task-filters")))
    browser.find_element(By.CSS_SELECTOR, "#filter-status option[value='failed']").click()
    browser.find_element(By.ID, "filter-apply").click()
    # The unfiltered list shows the task too: wait for the filtered one.
    wait(browser, lambda d: "status=failed" in d.current_url
         and [r.get_attribute("data-id") for r in d.find_elements(By.CSS_SELECTOR, "tbody tr")] == [str(doomed)])
    shot(browser, "3-tasks-failed")
    browser.find_element(By.ID, "filter-error").send_keys("nothing-like-this")
    browser.find_element(By.ID, "filter-apply").click()
    wait(browser, when.presence_of_element_located((By.ID, "no-tasks")))
    browser.back()
    wait(browser, when.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-id='{doomed}']")))
    row = wait(browser, when.element_to_be_clickable((By.CSS_SELECTOR, f"tr[data-id='{doomed}']")))
    row.click()
    assert json.loads(text_of(browser, "task-params")) == {"doomed": True}
    history = text_of(browser, "task-history")
    assert "claimed by night-worker" in history and "failed" in history
    assert "report source unreachable" in browser.find_element(By.ID, "task-fields").text
    shot(browser, "4-task")

    # Retry it, with confirmation, and see it pending again.
    browser.find_element(By.ID, "action-retry").click()
    wait(browser, when.alert_is_present()).accept()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "h1 .badge").text == "pending")
    assert api.ok("GET", f"/api/tasks/{doomed}")["status"] == "pending"
    shot(browser, "5-task-retried")

    # Types: deactivate one, with confirmation.
    browser.find_element(By.ID, "nav-types").click()
    button = wait(browser, when.element_to_be_clickable((By.CSS_SELECTOR, "tr[data-type='report.daily'] button")))
    button.click()
    wait(browser, when.alert_is_present()).accept()
    wait(browser, lambda d: "inactive" in d.find_element(By.CSS_SELECTOR, "tr[data-type='report.daily']").text)
    assert api.ok("GET", "/api/task-types/report.daily")["is_active"] is False
    shot(browser, "6-types")

    # Bulk: cancel every pending email, after confirming.
    browser.get(api.base + "/dashboard#/tasks?status=pending&type=email.send")
    wait(browser, when.element_to_be_clickable((By.ID, "bulk-cancel"))).click()
    wait(browser, when.alert_is_present()).accept()
    wait(browser, lambda d: "cancel: 6 of 6 changed" in d.find_element(By.ID, "status").text)
    assert api.sql("SELECT COUNT(*) FROM tasks WHERE status = 'cancelled'").strip() == "6"
    shot(browser, "7-bulk-cancelled")

    # Signing out closes it again, and the session cookie is dead even if someone kept a copy.
    session = browser.get_cookie("tm_dashboard")["value"]
    assert send(api.base, "GET", "/dashboard/api/stats", {"Cookie": "tm_dashboard=" + session}).status == 200
    browser.find_element(By.ID, "logout").click()
    wait(browser, when.presence_of_element_located((By.ID, "login-password")))
    assert send(api.base, "GET", "/dashboard/api/stats", {"Cookie": "tm_dashboard=" + session}).status == 401
    assert time.time() > 0


def test_task_list_filters_by_params_text_and_by_error_text(api, browser):
    """The library's text filter matches params or error; the dashboard narrows it to one."""
    api.ok("POST", "/api/task-types/register", {"name": "probe", "version": "1", "param_schema": {"type": "object"}},
           status=201)
    in_error = api.ok("POST", "/api/tasks", {"type": "probe", "params": {"host": "db"}, "max_attempts": 1},
                      status=201)["id"]
    in_params = api.ok("POST", "/api/tasks", {"type": "probe", "params": {"host": "Unreachable-Host"}},
                       status=201)["id"]
    assert api.ok("POST", "/api/tasks/claim", {"worker_id": "w"})["id"] == in_error
    api.ok("POST", f"/api/tasks/{in_error}/complete", {"worker_id": "w", "success": False,
                                                       "error": "host unreachable"})
    # The API itself: each field alone, and both at once.
    ids = lambda query: [t["id"] for t in api.ok("GET", "/dashboard/api/tasks?" + query)]
    assert sorted(ids("text=unreachable")) == sorted([in_params, in_error])
    assert ids("params=unreachable") == [in_params]
    assert ids("error=UNREACHABLE") == [in_error]
    assert ids("params=unreachable&error=unreachable") == []

    sign_in(api, browser)
    browser.get(api.base + "/dashboard#/tasks")
    wait(browser, when.presence_of_element_located((By.ID, "filter-params"))).send_keys("unreachable")
    browser.find_element(By.ID, "filter-apply").click()
    # The unfiltered list (both tasks) shows first: wait for the filtered one.
    wait(browser, lambda d: "params=unreachable" in d.current_url
         and [r.get_attribute("data-id") for r in d.find_elements(By.CSS_SELECTOR, "tbody tr")] == [str(in_params)])
    # A bulk action selects by text in either field: not offered where it would reach more.
    assert not browser.find_elements(By.ID, "bulk-cancel")
    browser.get(api.base + "/dashboard#/tasks?error=unreachable")
    wait(browser, lambda d: [r.get_attribute("data-id") for r in d.find_elements(By.CSS_SELECTOR, "tbody tr")]
         == [str(in_error)])
    assert browser.find_element(By.ID, "filter-error").get_attribute("value") == "unreachable"

    # From a type to its tasks: the types page links each name to its filtered list.
    browser.get(api.base + "/dashboard#/types")
    wait(browser, when.element_to_be_clickable((By.CSS_SELECTOR, "tr[data-type='probe'] a.type-tasks"))).click()
    wait(browser, lambda d: d.current_url.endswith("#/tasks?type=probe"))
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2)
    assert browser.find_element(By.CSS_SELECTOR, "#filter-type option:checked").text == "probe"


def test_chart_day_range_and_scale(api, browser):
    """The day range is offered when the stats carry hourly series; fed such series, the chart
    draws 24 bars on a round scale with an axis in hours."""
    sign_in(api, browser)
    wait(browser, when.presence_of_element_located((By.ID, "throughput-chart")))
    # The day range is offered exactly when the stats carry the hourly series.
    offered = browser.execute_script("return rangesIn(arguments[0])", api.ok("GET", "/dashboard/api/stats")["throughput"])
    assert bool(browser.find_elements(By.ID, "range-day")) == ("day" in offered)
    hourly = {"completed_per_minute": [0] * 60, "failed_per_minute": [0] * 60,
              "completed_per_hour": [7] + [0] * 22 + [30], "failed_per_hour": [3] + [0] * 23}
    figure = browser.execute_script("""
        const node = chart({a: arguments[0]}, 'day', rangesIn({a: arguments[0]}));
        document.getElementById('view').replaceChildren(node);
        return {y: node.querySelector('#chart-y').innerText, x: node.querySelector('#chart-x').innerText,
                legend: node.querySelector('#chart-legend').innerText, bars: node.querySelectorAll('rect').length,
                ranges: [...node.querySelectorAll('.range a')].map(a => a.id)};
    """, hourly)
    assert figure["y"].split() == ["0", "10", "20", "30"], figure
    assert figure["x"].split("\n")[0] == "−24 h" and figure["x"].endswith("now"), figure
    assert "completed (37)" in figure["legend"] and "failed (3)" in figure["legend"], figure
    assert figure["bars"] == 3 and figure["ranges"] == ["range-hour", "range-day"], figure
    assert browser.execute_script("return scale(0).ticks.join(',') + ' ' + scale(7).ticks.join(',')") == "0,1 0,2,4,6,8"


def sign_in(api, browser):
    browser.get(api.base + "/dashboard")
    wait(browser, when.presence_of_element_located((By.ID, "login-password"))).send_keys(KEY)
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, when.presence_of_element_located((By.ID, "total-pending")))


def page_fits(browser, name, width, height):
    """Sizes the viewport (as a device would, not a window with a minimum width), saves a
    full-page screenshot, and answers the page's width, the viewport's without and with a
    scroll bar (on a phone a page too wide widens the viewport) and the elements that reach
    past the viewport."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (SHOTS / f"{name}-{width}.png").write_bytes(base64.b64decode(shot["data"]))
    # Inside a .scroll box a wide table is meant to scroll; everything else stays in view.
    return browser.execute_script(
        "const page = document.documentElement;"
        "return [page.scrollWidth, page.clientWidth, window.innerWidth,"
        " [...document.querySelectorAll('header, main, h1, h2, p, li, pre, form, figure, .cards, .scroll, button, input, select')]"
        "   .filter(e => !e.parentElement.closest('.scroll'))"
        "   .filter(e => e.getBoundingClientRect().right > page.clientWidth + 0.5).map(e => e.tagName + '#' + e.id)]")


@pytest.mark.parametrize("width,height", [(1280, 800), (375, 812)])
def test_every_page_fits_a_desktop_and_a_phone(api, browser, width, height):
    api.ok("POST", "/api/task-types/register", {"name": "email.send.with-a-long-type-name", "version": "1.0.0",
                                               "param_schema": {"type": "object"}}, status=201)
    task = api.ok("POST", "/api/tasks", {"type": "email.send.with-a-long-type-name", "max_attempts": 1,
                                         "params": {"to": "someone-with-a-long-address@example.com", "n": 1}},
                  status=201)["id"]
    api.ok("POST", "/api/tasks/claim", {"worker_id": "worker-with-a-rather-long-identifier-01"})
    api.ok("POST", f"/api/tasks/{task}/complete", {"worker_id": "worker-with-a-rather-long-identifier-01",
                                                   "success": False, "error": "x" * 120})
    api.ok("POST", "/api/tasks", {"type": "email.send.with-a-long-type-name", "params": {"n": 2}}, status=201)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    browser.get(api.base + "/dashboard")
    wait(browser, when.presence_of_element_located((By.ID, "login-password")))
    pages = [("login", None, "login-password"), ("overview", "#/overview", "throughput-chart"),
             ("tasks", "#/tasks?status=failed", "task-filters"), ("task", f"#/task/{task}", "task-history"),
             ("types", "#/types", "nav-types")]
    for name, route, ready in pages:
        if route:
            browser.get(api.base + "/dashboard" + route)
        wait(browser, when.presence_of_element_located((By.ID, ready)))
        if name == "tasks":
            wait(browser, when.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-id='{task}']")))
        scroll_width, client_width, inner_width, overflowing = page_fits(browser, name, width, height)
        assert inner_width == width and scroll_width == client_width and overflowing == [], \
            (name, width, scroll_width, client_width, inner_width, overflowing)
        if name == "types":
            # The one action of the page is in reach without scrolling the table.
            button = browser.find_element(By.CSS_SELECTOR, "tr[data-type] button").rect
            assert button["x"] + button["width"] <= client_width, (button, client_width)
        if name == "login":
            browser.find_element(By.ID, "login-password").send_keys(KEY)
            browser.find_element(By.ID, "login-submit").click()
            wait(browser, when.presence_of_element_located((By.ID, "total-pending")))
    # Wide tables scroll in their own box at phone width; the page itself does not.
    if width < 600:
        browser.get(api.base + "/dashboard#/overview")
        wait(browser, when.presence_of_element_located((By.ID, "throughput-chart")))
        chart_box = browser.find_element(By.ID, "throughput-chart").rect
        assert 250 <= chart_box["width"] <= width, chart_box
