"""Drains the queue through the Python binding (ctypes) with N worker threads (ctypes releases
the GIL during each call), each claiming one task and completing it until the queue is empty.
Run by `cargo bench --bench queue -- bindings`, which fills the queue and compares the figure
with the Rust API's in the same run.

    python3 benches/bindings/drain.py CONFIG_JSON WORKERS
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))

from taskmanager import Client  # noqa: E402


def main() -> None:
    config, workers = json.loads(sys.argv[1]), int(sys.argv[2])
    client = Client(config)
    done = [0] * workers
    errors = []

    def work(w: int) -> None:
        try:
            while True:
                tasks = client.claim(f"py-{w}")
                if not tasks:
                    return
                tasks[0].complete(None)
                done[w] += 1
        except Exception as e:  # reported below; the bench fails
            errors.append(e)

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    if errors or sum(done) == 0:
        sys.exit(f"drain failed: {errors or 'nothing to do'}")
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
