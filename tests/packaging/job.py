"""A producer/worker round trip through an installed `taskmanager` package: no TASKMANAGER_*
variable, no build tree next to it. Usage: python job.py HOST PORT USER DATABASE"""

import sys
import uuid

import taskmanager

host, port, user, database = sys.argv[1:5]
with taskmanager.Client({"db_host": host, "db_port": int(port), "db_user": user, "db_pass": "",
                         "db_name": database}) as client:
    client.migrate()
    client.register_type("packaged.job", {"type": "object"}, version="1.0.0")
    created = client.enqueue("packaged.job", {"run": uuid.uuid4().hex})
    [task] = client.claim("packaged-worker", types=["packaged.job"])
    assert task.id == created["id"], (task, created)
    task.complete({"ok": True})
    assert client.get_task(task.id)["status"] == "completed"
    print("python job ok, library", taskmanager._ffi.lib._name, taskmanager.version())
