"""Soak worker (Python binding): runs tasks by the rule in their params until the stop file
exists and the queue has nothing left for it. Any error a worker should never see (a deadlock
or lock wait surfacing) ends it with a traceback and a non-zero status.

    python3 tests/soak/worker.py CONFIG_JSON STOP_FILE WORKER_ID [--through-faults]

With --through-faults (the server is being restarted) a lost connection or an unknown outcome
is waited out and the same call repeated, as a real worker does.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))

from taskmanager import Client, ConnectionFailedError, LeaseLostError, OutcomeUnknownError  # noqa: E402


def persist(through_faults, call):
    """Runs ``call``, repeating it through connection faults when asked to."""
    while True:
        try:
            return call()
        except (ConnectionFailedError, OutcomeUnknownError):
            if not through_faults:
                raise
            time.sleep(0.05)


def main() -> None:
    config, stop_file, worker_id = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    through_faults = "--through-faults" in sys.argv
    client = persist(through_faults, lambda: Client(config))
    done = 0
    while True:
        tasks = persist(through_faults, lambda: client.claim(worker_id, types=["soak"], limit=2))
        if not tasks:
            if os.path.exists(stop_file):
                break
            time.sleep(0.02)
            continue
        for task in tasks:
            p = task.params
            try:
                if p["dead"]:
                    persist(through_faults, lambda: task.fail("dead on arrival", retry=False))
                elif task.attempts <= p["fail"]:
                    persist(through_faults, lambda: task.fail("not yet", retry=True, retry_in_seconds=0))
                else:
                    persist(through_faults, lambda: task.complete({"by": worker_id}))
                done += 1
            except LeaseLostError:
                pass  # the lease ran out meanwhile: another worker runs the task
    print(json.dumps({"worker": worker_id, "steps": done}))


if __name__ == "__main__":
    main()
