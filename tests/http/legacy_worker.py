"""A worker written the way the original system's Python workers were, for the HTTP tests: it
knows nothing of this project. It resolves type ids with GET /task-types?active_only=true
(data.task_types[].id) and GET /task-types/{name} (data.id), claims per task_type_id, treats 404
as "nothing here, try the next type", and counts 200 and 201 as success. It can also create
tasks with a priority, as their producers did.

    python3 legacy_worker.py BASE_URL API_KEY WORKER_ID work            # drain every type
    python3 legacy_worker.py BASE_URL API_KEY WORKER_ID create NAME N   # N tasks of type NAME
Prints "done <id> <type>" per finished task and "idle" when no type has work left.
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


class Api:
    def __init__(self, base, key):
        self.base, self.key = base.rstrip("/"), key

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "X-API-Key": self.key})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def type_ids(api):
    status, body = api.request("GET", "/api/task-types?active_only=true")
    assert status == 200, body
    ids = {t["name"]: t["id"] for t in body["data"]["task_types"]}
    # The original workers looked each name up again before using it.
    for name in list(ids):
        status, body = api.request("GET", "/api/task-types/" + urllib.parse.quote(name, safe=""))
        assert status == 200, body
        ids[name] = body["data"]["id"]
    return ids


def work(api, worker):
    ids = type_ids(api)
    while True:
        claimed_any = False
        for name, type_id in ids.items():
            status, body = api.request("POST", "/api/tasks/claim", {"worker_id": worker, "task_type_id": type_id})
            if status == 404:
                continue  # nothing of this type: try the next one
            assert status in (200, 201), body
            task = body["data"]
            claimed_any = True
            status, body = api.request("POST", f"/api/tasks/{task['id']}/complete", {
                "worker_id": worker, "success": True, "result": {"type": task["type"], "n": task["params"].get("n")},
            })
            assert status in (200, 201), body
            print("done", task["id"], task["type"], flush=True)
        if not claimed_any:
            print("idle", flush=True)
            return


def create(api, name, count):
    for n in range(count):
        status, body = api.request("POST", "/api/tasks", {"type": name, "params": {"n": n}, "priority": n % 3})
        assert status in (200, 201), body
        print("created", body["data"]["id"], flush=True)


if __name__ == "__main__":
    base, key, worker, action = sys.argv[1:5]
    api = Api(base, key)
    if action == "work":
        work(api, worker)
    else:
        create(api, sys.argv[5], int(sys.argv[6]))
