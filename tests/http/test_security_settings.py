"""The original's optional security constants in config.php (IP block and allow lists, request
size, per-IP rate limit, security headers), honoured over real HTTP with the original's
answers, and the client address taken from the socket unless a trusted proxy forwards it."""

import concurrent.futures
import json
import re
import subprocess
import tempfile
from pathlib import Path

from conftest import KEY, original_config
from raw_http import send

HERE = Path(__file__).resolve().parent
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def configured(database, start, **constants):
    """A server with these constants and its own state directory (returned, to read the log)."""
    state = Path(tempfile.mkdtemp(prefix="tm_state_"))
    api = start(original_config(database, STATE_DIR=str(state), **constants))
    return api, state


def events(state):
    log = state / "security.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def refused(answer, status, error, message):
    assert answer.status == status, (answer.status, answer.body)
    body = answer.json()
    assert (body["success"], body["error"], body["message"]) == (False, error, message), body
    assert ISO.match(body["timestamp"]), body["timestamp"]
    return body


def test_a_blocked_ip_is_refused_before_the_key_and_forging_a_header_does_not_help(database, start):
    api, state = configured(database, start, IP_BLACKLIST_ENABLED=True, IP_BLACKLIST="10.9.9.9, 127.0.0.1")
    started = len(events(state))  # the fixture's own request to see the server up was refused too
    for headers in ({}, {"X-Forwarded-For": "203.0.113.5"}, {"X-Real-IP": "203.0.113.5"},
                    {"CF-Connecting-IP": "203.0.113.5"}):
        refused(send(api.base, "GET", "/health", headers), 403, "Access Denied", "Your IP address has been blocked.")
    # Before the key: a blocked client learns nothing about it.
    refused(send(api.base, "GET", "/tasks", {"X-API-Key": KEY}), 403, "Access Denied",
            "Your IP address has been blocked.")
    logged = events(state)[started:]
    assert [e["event"] for e in logged] == ["ip_blocked"] * 5
    assert logged[0]["ip"] == "127.0.0.1" and logged[-1]["request_uri"] == "/tasks"
    assert set(logged[0]) == {"time", "event", "ip", "user_agent", "request_uri", "details"}
    # The list counts only when its flag is on.
    off, _ = configured(database, start, IP_BLACKLIST_ENABLED=False, IP_BLACKLIST="127.0.0.1")
    assert send(off.base, "GET", "/health").status == 200


def test_the_allow_list_holds_against_a_forged_forwarded_for(database, start):
    api, state = configured(database, start, IP_WHITELIST_ENABLED=True, IP_WHITELIST="10.0.0.7,,")
    for headers in ({}, {"X-Forwarded-For": "10.0.0.7"}, {"X-Real-IP": "10.0.0.7"},
                    {"CF-Connecting-IP": "10.0.0.7"}):
        refused(send(api.base, "GET", "/health", headers), 403, "Access Denied", "Your IP address is not authorized.")
    assert {e["event"] for e in events(state)} == {"ip_not_whitelisted"}
    # Behind a proxy that is trusted, the address it forwards counts: the last one it added,
    # not whatever the client put first.
    proxied, _ = configured(database, start, IP_WHITELIST_ENABLED=True, IP_WHITELIST="10.0.0.7",
                            TRUSTED_PROXIES="127.0.0.1")
    assert send(proxied.base, "GET", "/health", {"X-Forwarded-For": "10.0.0.7"}).status == 200
    assert send(proxied.base, "GET", "/health", {"X-Forwarded-For": "10.0.0.8"}).status == 403
    assert send(proxied.base, "GET", "/health", {"X-Forwarded-For": "10.0.0.7, 198.51.100.1"}).status == 403
    assert send(proxied.base, "GET", "/health", {"X-Forwarded-For": "not-an-ip"}).status == 403
    # Ranges work; an empty list turns the check off, as in the original.
    ranged, _ = configured(database, start, IP_WHITELIST_ENABLED=True, IP_WHITELIST="127.0.0.0/8")
    assert send(ranged.base, "GET", "/health").status == 200
    empty, _ = configured(database, start, IP_WHITELIST_ENABLED=True, IP_WHITELIST="")
    assert send(empty.base, "GET", "/health").status == 200


def test_max_request_size_refuses_a_larger_body_with_413(database, start):
    api, state = configured(database, start, MAX_REQUEST_SIZE=1024)
    big = {"type": "email.send", "params": {"text": "x" * 2000}}
    body = refused(send(api.base, "POST", "/tasks", {"X-API-Key": KEY}, big), 413, "Request Too Large",
                   "Request body exceeds maximum allowed size of 1 KB")
    assert "data" not in body
    small = send(api.base, "POST", "/tasks", {"X-API-Key": KEY}, {"type": "email.send", "params": {"text": "x"}})
    assert small.status == 404 and small.json()["error"] == "Task type not found", "a small body goes on"
    assert [e["event"] for e in events(state)] == ["request_too_large"]
    assert Path(api.log).read_text().count("Allowed memory size") == 0
    odd, _ = configured(database, start, MAX_REQUEST_SIZE=1536)
    refused(send(odd.base, "POST", "/tasks", {"X-API-Key": KEY}, big), 413, "Request Too Large",
            "Request body exceeds maximum allowed size of 1.5 KB")


def test_rate_limit_per_ip_and_path_with_the_original_headers(database, start):
    api, state = configured(database, start, RATE_LIMIT_ENABLED=True, RATE_LIMIT_MAX_REQUESTS=3,
                            RATE_LIMIT_TIME_WINDOW=3600)
    remaining = []
    for _ in range(3):
        answer = send(api.base, "GET", "/health")
        assert answer.status == 200 and answer.header("X-RateLimit-Limit") == "3"
        remaining.append(answer.header("X-RateLimit-Remaining"))
    assert remaining == ["2", "1", "0"]
    # Forged forwarding headers are one more request from the same socket address.
    for headers in ({}, {"X-Forwarded-For": "198.51.100.23"}, {"X-Real-IP": "198.51.100.24"}):
        over = send(api.base, "GET", "/health", headers)
        body = refused(over, 429, "Too Many Requests",
                       f"Rate limit exceeded. Please try again in {over.header('Retry-After')} seconds.")
        retry = int(over.header("Retry-After"))
        assert 0 < retry <= 2 * 3600 and body["retry_after"] == retry
        assert (body["limit"], body["window"]) == (3, 3600)
        assert over.header("X-RateLimit-Remaining") == "0" and int(over.header("X-RateLimit-Reset")) > 0
    # Another path has its own count.
    assert send(api.base, "GET", "/tasks", {"X-API-Key": KEY}).status == 200
    assert [e["event"] for e in events(state)] == ["rate_limit_exceeded"] * 3
    # Behind a trusted proxy each forwarded client has its own count.
    proxied, _ = configured(database, start, RATE_LIMIT_ENABLED=True, RATE_LIMIT_MAX_REQUESTS=1,
                            RATE_LIMIT_TIME_WINDOW=3600, TRUSTED_PROXIES="127.0.0.1")
    assert send(proxied.base, "GET", "/health", {"X-Forwarded-For": "10.1.0.1"}).status == 200
    assert send(proxied.base, "GET", "/health", {"X-Forwarded-For": "10.1.0.1"}).status == 429
    assert send(proxied.base, "GET", "/health", {"X-Forwarded-For": "10.1.0.2"}).status == 200


def test_rate_limit_counts_concurrent_requests_exactly_and_its_state_stays_bounded(database, start):
    state = Path(tempfile.mkdtemp(prefix="tm_state_"))
    api = start(original_config(database, STATE_DIR=str(state), RATE_LIMIT_ENABLED=True,
                                RATE_LIMIT_MAX_REQUESTS=25, RATE_LIMIT_TIME_WINDOW=3600), workers=8)
    # A path no route serves: answered without the database, so only the limit decides.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: send(api.base, "GET", "/unrouted").status, range(60)))
    assert statuses.count(404) == 25 and statuses.count(429) == 35, sorted(statuses)
    # Clients choose the paths: thousands of them must not grow the state past its fixed size.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: send(api.base, "GET", f"/nothing/{n}"), range(1500)))
    assert (state / "rate-limit.bin").stat().st_size <= 4096 * 8 * 32


def test_security_headers_when_asked_and_hsts_only_over_https(database, start):
    api, _ = configured(database, start, ENABLE_SECURITY_HEADERS=True, TRUSTED_PROXIES="127.0.0.1")
    expected = {
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "X-XSS-Protection": "1; mode=block",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "Permissions-Policy": "geolocation=(), microphone=(), camera=()",
    }
    for path, key in (("/health", None), ("/tasks", None), ("/tasks", KEY), ("/nowhere", KEY)):
        answer = send(api.base, "GET", path, {"X-API-Key": key} if key else {})
        assert {name: answer.header(name) for name in expected} == expected, path
        assert answer.header("Strict-Transport-Security") is None
    # The dashboard's pages keep their own policy (its scripts and styles must load).
    page = send(api.base, "GET", "/dashboard")
    assert page.header("Content-Security-Policy").startswith("default-src 'self'")
    https = send(api.base, "GET", "/health", {"X-Forwarded-Proto": "https"})
    assert https.header("Strict-Transport-Security") == "max-age=31536000; includeSubDomains"
    # Only a trusted proxy can say the request came over HTTPS.
    direct, _ = configured(database, start, ENABLE_SECURITY_HEADERS=True)
    assert send(direct.base, "GET", "/health", {"X-Forwarded-Proto": "https"}).header("Strict-Transport-Security") is None
    plain, _ = configured(database, start)
    answer = send(plain.base, "GET", "/health")
    assert answer.header("X-Frame-Options") is None and answer.header("X-Content-Type-Options") == "nosniff"


def test_failed_keys_are_logged_without_the_key(database, start):
    api, state = configured(database, start)
    assert send(api.base, "GET", "/tasks", {"X-API-Key": "guess-1234567890"}).status == 401
    logged = events(state)
    assert [e["event"] for e in logged] == ["auth_failed"]
    assert "guess" not in json.dumps(logged) and len(logged[0]["details"]["key_fingerprint"]) == 8


def test_the_state_file_loses_no_update_under_concurrent_writers(tmp_path):
    # The HTTP test above rarely overlaps two updates in time; eight processes adding in a
    # tight loop always do, so a missing lock shows here as a total below 8 x 2000.
    file = tmp_path / "counters.bin"
    writers = [subprocess.Popen(["php", str(HERE / "slot_hammer.php"), str(file), "2000"], stdout=subprocess.PIPE)
               for _ in range(8)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    final = subprocess.run(["php", str(HERE / "slot_hammer.php"), str(file), "0"], capture_output=True,
                           text=True, check=True).stdout
    assert json.loads(final)["a"] == 8 * 2000
