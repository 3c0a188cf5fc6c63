"""Flow control race worker (Python binding): claims tasks of one type with a short lease,
holds each for HOLD_MS (the work), completes it, and goes on until the stop file exists and
nothing is left to claim. The test may kill it with SIGKILL at any moment.

    python3 tests/flow/worker.py CONFIG_JSON STOP_FILE WORKER_ID TYPE HOLD_MS

Prints a JSON line as each task ends for it, {"completed": id} (this call finished the task)
or {"lease_lost": id}, and a last line {"worker", "steps", "lease_lost"} when it stops.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))

from taskmanager import Client, LeaseLostError  # noqa: E402


def main() -> None:
    config, stop_file, worker_id = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    type_name, hold = sys.argv[4], int(sys.argv[5]) / 1000
    client = Client(config)
    done = lost = 0
    while True:
        tasks = client.claim(worker_id, types=[type_name], lease_seconds=2)
        if not tasks:
            if os.path.exists(stop_file):
                break
            time.sleep(0.01)
            continue
        for task in tasks:
            time.sleep(hold)
            try:
                finished = task.complete({"by": worker_id})
                if not finished["repeated"]:
                    print(json.dumps({"completed": task.id}), flush=True)
                    done += 1
            except LeaseLostError:
                # the lease ran out meanwhile: the task runs again elsewhere
                print(json.dumps({"lease_lost": task.id}), flush=True)
                lost += 1
    print(json.dumps({"worker": worker_id, "steps": done, "lease_lost": lost}), flush=True)


if __name__ == "__main__":
    main()
