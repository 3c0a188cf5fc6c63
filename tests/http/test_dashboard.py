"""The web dashboard at /dashboard, in a real browser: headless Chromium driven by Selenium.
Screenshots of every page land in target/dashboard-screenshots/ (kept as CI artifacts)."""

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
    row = wait(browser, when.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-id='{doomed}']")))
    # The unfiltered list holds that row too: wait for the filtered one to replace it.
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tbody tr")) == 1)
    shot(browser, "3-tasks-failed")
    browser.find_element(By.ID, "filter-text").send_keys("nothing-like-this")
    browser.find_element(By.ID, "filter-apply").click()
    wait(browser, when.presence_of_element_located((By.ID, "no-tasks")))
    browser.back()
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
