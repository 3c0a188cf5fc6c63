"""The dashboard's sign-in, session and actions as an attacker would probe them, over real HTTP:
the API key does not open a password-protected dashboard, sessions are signed with a random
server-side key, capped, revoked on sign-out, Secure over HTTPS; failed sign-ins are limited
without holding a worker; bulk errors and bad filters answer as single actions do."""

import base64
import hashlib
import hmac
import json
import tempfile
import time
from pathlib import Path

from conftest import original_config, start_api, stop_api
from raw_http import send

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def dashboard(database, start, **constants):
    state = Path(tempfile.mkdtemp(prefix="tm_state_"))
    constants.setdefault("DASHBOARD_PASSWORD", "dash-pass")
    return start(original_config(database, STATE_DIR=str(state), **constants)), state


def login(api, password="dash-pass", headers=None):
    return send(api.base, "POST", "/dashboard/login", {**FORM, **(headers or {})}, "password=" + password)


def with_cookie(name, value, headers=None):
    return {"Cookie": f"{name}={value}", **(headers or {})}


def test_a_session_is_signed_with_a_random_server_key_and_capped(database, start):
    api, state = dashboard(database, start)
    signed_in = login(api)
    assert signed_in.status == 303 and signed_in.header("Location") == "/dashboard"
    name, value, attributes = signed_in.cookie()
    assert name == "tm_dashboard" and "httponly" in attributes and "samesite=strict" in attributes
    assert "max-age=28800" in attributes and "secure" not in attributes
    stats = send(api.base, "GET", "/dashboard/api/stats", with_cookie(name, value))
    assert stats.status == 200 and stats.header("Cache-Control") == "no-store"
    # The MAC is keyed with the random key in the state directory, not with the password.
    session_id, expires, signature = value.split(".")
    key = (state / "session.key").read_bytes()
    assert len(key) == 32
    message = f"{session_id}|{expires}|{hashlib.sha256(b'dash-pass').hexdigest()}".encode()
    assert signature == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert int(expires) - time.time() <= 8 * 3600 + 5
    # A stretched expiry (year 5138), a changed id or signature: refused. The id's first
    # character is swapped for one it is not, so the forgery always differs from the original.
    other_id = ("B" if session_id[0] == "A" else "A") + session_id[1:]
    for forged in (f"{session_id}.99999999999.{signature}", f"{other_id}.{expires}.{signature}",
                   f"{session_id}.{expires}.{'0' * 64}", "", "a.b", value + ".x"):
        assert send(api.base, "GET", "/dashboard/api/stats", with_cookie(name, forged)).status == 401, forged
    # Even one signed with the right key for too long a life is refused: the cap is checked.
    far = str(int(time.time()) + 30 * 86400)
    long_lived = hmac.new(key, f"{session_id}|{far}|{hashlib.sha256(b'dash-pass').hexdigest()}".encode(),
                          hashlib.sha256).hexdigest()
    assert send(api.base, "GET", "/dashboard/api/stats", with_cookie(name, f"{session_id}.{far}.{long_lived}")).status == 401


def test_a_restart_keeps_sessions_and_a_new_password_ends_them(database, start):
    state = Path(tempfile.mkdtemp(prefix="tm_state_"))
    config = original_config(database, STATE_DIR=str(state), DASHBOARD_PASSWORD="dash-pass")
    first = start_api(database, config)
    name, value, _ = login(first).cookie()
    stop_api(first)
    second = start(config)
    assert send(second.base, "GET", "/dashboard/api/stats", with_cookie(name, value)).status == 200
    changed = start(original_config(database, STATE_DIR=str(state), DASHBOARD_PASSWORD="new-pass"))
    assert send(changed.base, "GET", "/dashboard/api/stats", with_cookie(name, value)).status == 401


def test_the_api_key_does_not_reach_a_password_protected_dashboard(database, start, api):
    protected, _ = dashboard(database, start)
    api.ok("POST", "/api/task-types/register", {"name": "t", "version": "1", "param_schema": {}}, status=201)
    api.ok("POST", "/api/tasks", {"type": "t", "params": {}}, status=201)
    from conftest import KEY
    for method, path, body in (("GET", "/dashboard/api/stats", None), ("GET", "/dashboard/api/tasks", None),
                               ("POST", "/dashboard/api/bulk", {"action": "cancel", "filter": {"status": "pending"}}),
                               ("POST", "/dashboard/api/tasks/1/cancel", {})):
        answer = send(protected.base, method, path, {"X-API-Key": KEY}, body)
        assert answer.status == 401, (path, answer.body)
    assert api.ok("GET", "/api/tasks/1")["status"] == "pending"
    assert login(protected, password=KEY).header("Location").endswith("?failed=1"), "nor as the password"


def test_sign_out_revokes_and_only_the_dashboard_page_may_sign_out(database, start):
    api, _ = dashboard(database, start)
    name, value, _ = login(api).cookie()
    cookie = with_cookie(name, value)
    host = api.base.split("//")[1]
    for foreign in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site", "Origin": api.base}, {}):
        answer = send(api.base, "POST", "/dashboard/logout", {**cookie, **foreign})
        assert answer.status == 403, foreign
    assert send(api.base, "GET", "/dashboard/api/stats", cookie).status == 200, "still signed in"
    out = send(api.base, "POST", "/dashboard/logout", {**cookie, "Origin": api.base, "Host": host})
    assert out.status == 303 and out.cookie()[1] == "" and "max-age=0" in out.cookie()[2]
    # The cookie a thief copied before is dead too.
    assert send(api.base, "GET", "/dashboard/api/stats", cookie).status == 401
    name, value, _ = login(api).cookie()
    assert send(api.base, "POST", "/dashboard/logout",
                with_cookie(name, value, {"Sec-Fetch-Site": "same-origin"})).status == 303
    assert send(api.base, "GET", "/dashboard/api/stats", with_cookie(name, value)).status == 401


def test_over_https_the_cookie_is_secure_and_host_only(database, start):
    api, _ = dashboard(database, start, TRUSTED_PROXIES="127.0.0.1")
    https = {"X-Forwarded-Proto": "https"}
    name, value, attributes = login(api, headers=https).cookie()
    assert name == "__Host-tm_dashboard" and "secure" in attributes and "path=/" in attributes
    assert not any(a.startswith("domain") for a in attributes)
    assert send(api.base, "GET", "/dashboard/api/stats", with_cookie(name, value, https)).status == 200
    # Over plain HTTP the browser would not send it, and the server does not read it.
    assert send(api.base, "GET", "/dashboard/api/stats", with_cookie(name, value)).status == 401
    # A client that is not a trusted proxy cannot claim HTTPS.
    direct, _ = dashboard(database, start)
    assert login(direct, headers=https).cookie()[0] == "tm_dashboard"


def test_failed_sign_ins_are_limited_per_client_logged_and_hold_no_worker(database, start):
    api, state = dashboard(database, start)
    began = time.monotonic()
    for _ in range(10):
        wrong = login(api, password="guess")
        assert wrong.status == 303 and wrong.header("Location").endswith("?failed=1")
    # One worker serves this server: ten failures did not keep it busy.
    assert time.monotonic() - began < 2.5
    for password, headers in (("guess", {}), ("dash-pass", {}), ("dash-pass", {"X-Forwarded-For": "10.3.3.3"})):
        limited = login(api, password=password, headers=headers)
        assert limited.status == 429 and int(limited.header("Retry-After")) > 0, password
        assert b"Too many failed sign-ins" in limited.body and limited.header("Set-Cookie") is None
        assert b'<base href="/">' in limited.body, "the page's links work from /dashboard/login"
    assert send(api.base, "GET", "/health").status == 200
    logged = [json.loads(line)["event"] for line in (state / "security.log").read_text().splitlines()]
    assert logged.count("dashboard_login_failed") == 10 and logged.count("dashboard_login_limited") == 3
    assert "dashboard_login_failed" in Path(api.log).read_text()
    # A right password before the limit clears the count.
    other, _ = dashboard(database, start)
    for _ in range(9):
        login(other, password="guess")
    assert login(other).status == 303
    for _ in range(9):
        assert login(other, password="guess").status == 303


def test_bulk_errors_are_the_generic_500_and_bad_filters_are_400(database, start, api):
    protected, _ = dashboard(database, start)
    name, value, _ = login(protected).cookie()
    cookie = with_cookie(name, value)
    api.ok("POST", "/api/task-types/register", {"name": "t", "version": "1", "param_schema": {}}, status=201)
    api.ok("POST", "/api/tasks", {"type": "t", "params": {}}, status=201)
    for bad in ({"before_id": {}}, {"before_id": [1]}, {"before_id": "x"}, {"before_id": 1.5},
                {"limit": {"a": 1}}, {"before_id": "123456789012345678901234"}):
        answer = send(protected.base, "POST", "/dashboard/api/bulk", cookie,
                      {"action": "cancel", "filter": {"status": "pending", **bad}})
        assert answer.status == 400 and "must be a positive integer" in answer.json()["error"], (bad, answer.body)
    listed = send(protected.base, "GET", "/dashboard/api/tasks?before_id=99999999999999999999999", cookie)
    assert listed.status == 400
    # The history table gone: every cancel fails in the database. The answer names no table.
    api.sql("RENAME TABLE task_history TO task_history_gone")
    answer = send(protected.base, "POST", "/dashboard/api/bulk", cookie, {"action": "cancel", "filter": {"status": "pending"}})
    text = answer.body.decode()
    assert answer.status == 500 and answer.json()["success"] is False, text
    for leak in ("task_history", "doesn't exist", "Table", "SQL"):
        assert leak not in text, text
    api.sql("RENAME TABLE task_history_gone TO task_history")


def test_the_dashboard_with_a_trailing_slash(database, start):
    api, _ = dashboard(database, start)
    for path, target in (("/dashboard/", "/dashboard"), ("/api/dashboard/", "/api/dashboard"),
                         ("/dashboard/?failed=1", "/dashboard?failed=1")):
        answer = send(api.base, "GET", path)
        assert answer.status == 308 and answer.header("Location") == target, (path, answer.status)
    page = send(api.base, "GET", "/dashboard")
    assert page.status == 200 and page.header("Cache-Control") == "no-store"
    assert send(api.base, "GET", "/dashboard/style.css").status == 200


def test_session_ids_are_random(database, start):
    api, _ = dashboard(database, start)
    ids = {login(api).cookie()[1].split(".")[0] for _ in range(5)}
    assert len(ids) == 5 and all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
