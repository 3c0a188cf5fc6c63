"""Requests with full control, for the security tests: any method, headers and body, no
redirects followed, no header added behind the test's back."""

import http.client
import json
import urllib.parse


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def cookie(self):
        """The Set-Cookie header as (name, value, attributes in lower case)."""
        raw = self.header("Set-Cookie")
        first, *attributes = [part.strip() for part in raw.split(";")]
        name, value = first.split("=", 1)
        return name, value, [a.lower() for a in attributes]


def send(base, method, path, headers=None, body=None):
    """-> Answer. `body`: bytes, str, or a dict sent as JSON."""
    url = urllib.parse.urlsplit(base)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    elif isinstance(body, str):
        body = body.encode()
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()
