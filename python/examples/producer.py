"""Producer: registers a task type and enqueues a few tasks.

    TASKMANAGER_DATABASE_URL=mysql://user:pass@127.0.0.1:3306/queue python3 examples/producer.py 5
"""

import sys
import time

from taskmanager import Client

count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
with Client() as tm:  # settings from TASKMANAGER_* environment variables
    tm.migrate()
    tm.register_type("image.resize", {
        "type": "object",
        "required": ["path", "width"],
        "properties": {"path": {"type": "string"}, "width": {"type": "integer", "minimum": 1}},
    })
    run = f"{time.time():.0f}"  # identical params would be deduplicated across runs
    for i in range(count):
        queued = tm.enqueue("image.resize", {"path": f"photos/{i}.jpg", "width": 256, "run": run}, priority=i % 3)
        print(f"enqueued task {queued['id']} photos/{i}.jpg")
