"""A long-running worker: heartbeats while it works, retries failures with backoff, stops
cleanly on SIGTERM/SIGINT. `--once` exits when the queue is empty.

    TASKMANAGER_DATABASE_URL=mysql://user:pass@127.0.0.1:3306/queue python3 examples/worker.py
"""

import logging
import sys
import time

from taskmanager import Client, PermanentError, Worker


def resize(task):
    if not task.params["path"].endswith((".jpg", ".png")):
        raise PermanentError(f"unsupported file type: {task.params['path']}")
    time.sleep(0.2)  # stands in for the real work
    task.heartbeat(progress=100)
    return {"thumbnail": task.params["path"].replace("photos/", "thumbs/"), "width": task.params["width"]}


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
with Client() as tm:
    worker = Worker(tm, {"image.resize": resize}, lease_seconds=60)
    worker.install_signal_handlers()
    done = worker.run(stop_when_idle="--once" in sys.argv)
    print(f"worker: {done} task(s) handled")
