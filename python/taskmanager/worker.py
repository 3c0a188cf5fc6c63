"""A worker loop: wait in the claim when idle, run a handler per task, heartbeat in the
background while it runs, complete or fail it, and stop gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any, Callable, Dict, List, Optional

from ._errors import ConnectionFailedError, LeaseLostError, TaskManagerError
from .client import Client, Task

log = logging.getLogger("taskmanager.worker")

Handler = Callable[[Task], Any]


class PermanentError(Exception):
    """Raise from a handler when retrying cannot help: the task fails for good at once."""


class RetryLater(Exception):
    """Raise from a handler to retry after a fixed delay instead of the exponential backoff."""

    def __init__(self, message: str = "retry later", seconds: float = 60.0):
        super().__init__(message)
        self.seconds = seconds


class Worker:
    """Runs ``handlers[task.type](task)`` for each claimed task.

    The handler's return value becomes the task's result. An exception fails the task: a
    :class:`PermanentError` for good, a :class:`RetryLater` after its delay, anything else with
    the exponential backoff while attempts remain. While a handler runs, a background thread
    extends the lease every ``heartbeat_interval`` seconds (default: a third of the lease;
    0 turns heartbeats off). If the lease is lost anyway, the result is dropped, not reported.

    On an empty queue the worker waits inside its claim (the client's ``wait_seconds``) instead
    of sleeping between polls: a task is taken as soon as it is claimable (at once when this
    process enqueued it, within a second from another process or host). One claim waits at most
    ``wait_seconds`` (default 1, 0 to 60); a claim in progress cannot be interrupted, so that is
    also how long :meth:`stop`, SIGTERM or SIGINT take to end an idle worker. A longer wait costs
    the database fewer claims per idle worker and makes stopping slower. ``wait_seconds=0``
    polls instead, pausing ``idle_min`` doubling up to ``idle_max`` seconds while the queue stays
    empty. ``idle_max`` is also the pause after a connection error.
    """

    def __init__(
        self,
        client: Client,
        handlers: Dict[str, Handler],
        *,
        worker_id: Optional[str] = None,
        lease_seconds: int = 60,
        heartbeat_interval: Optional[float] = None,
        idle_min: float = 0.1,
        idle_max: float = 5.0,
        wait_seconds: float = 1.0,
        logger: Optional[logging.Logger] = None,
    ):
        if not handlers:
            raise ValueError("give at least one handler")
        if not 0 <= wait_seconds <= 60:
            raise ValueError(f"wait_seconds must be from 0 to 60, got {wait_seconds}")
        self.client = client
        self.handlers = dict(handlers)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.lease_seconds = lease_seconds
        self.heartbeat_interval = lease_seconds / 3 if heartbeat_interval is None else heartbeat_interval
        self.idle_min = idle_min
        self.idle_max = idle_max
        self.wait_seconds = wait_seconds
        self.log = logger or log
        self._stop = threading.Event()
        self.processed = 0
        self.failed = 0

    def stop(self) -> None:
        """Asks the loop to stop after the task in hand; an idle worker stops when its claim's
        wait ends, within ``wait_seconds``."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop gracefully (call from the main thread)."""
        def handle(signum: int, _frame: Any) -> None:
            self.log.info("signal %s: stopping after the current task", signum)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def run(self, *, stop_when_idle: bool = False, max_tasks: Optional[int] = None) -> int:
        """Works until :meth:`stop` (or the queue is empty with ``stop_when_idle``, or
        ``max_tasks`` are done). Returns the number of tasks handled."""
        idle = self.idle_min
        handled = 0
        types: List[str] = sorted(self.handlers)
        self.log.info("worker %s started for %s", self.worker_id, ", ".join(types))
        # stop_when_idle asks whether anything is runnable now: it never waits.
        wait = None if stop_when_idle or not self.wait_seconds else self.wait_seconds
        while not self._stop.is_set() and (max_tasks is None or handled < max_tasks):
            try:
                tasks = self.client.claim(self.worker_id, types=types, limit=1, lease_seconds=self.lease_seconds,
                                          wait_seconds=wait)
            except ConnectionFailedError as e:
                self.log.warning("database unavailable, retrying in %.1fs: %s", self.idle_max, e)
                self._stop.wait(self.idle_max)
                continue
            if tasks and self._stop.is_set():
                # The stop came while the claim was waiting: these were never started.
                self._release(tasks)
                break
            if not tasks:
                if stop_when_idle:
                    break
                if wait is None:
                    self._stop.wait(idle)
                    idle = min(idle * 2, self.idle_max)
                continue
            idle = self.idle_min
            for task in tasks:
                self._handle(task)
                handled += 1
        self.log.info("worker %s stopped after %d task(s)", self.worker_id, handled)
        return handled

    def _release(self, tasks: List[Task]) -> None:
        for task in tasks:
            try:
                task.release()
                self.log.info("task %s (%s) released unstarted", task.id, task.type)
            except TaskManagerError as e:  # left to its lease
                self.log.warning("task %s could not be released: %s", task.id, e)

    def _handle(self, task: Task) -> None:
        lost = threading.Event()
        done = threading.Event()
        beat = None
        if self.heartbeat_interval and self.heartbeat_interval > 0:
            beat = threading.Thread(target=self._heartbeat, args=(task, done, lost), daemon=True)
            beat.start()
        try:
            result = self.handlers[task.type](task)
        except Exception as e:  # the handler's failure is the task's failure
            done.set()
            self._fail(task, e, lost)
            return
        finally:
            done.set()
            if beat:
                beat.join()
        if lost.is_set():
            self.log.warning("task %s: lease lost while running; result dropped", task.id)
            return
        try:
            task.complete(result)
            self.processed += 1
            self.log.info("task %s (%s) completed", task.id, task.type)
        except LeaseLostError:
            self.log.warning("task %s: lease lost before completion; another worker owns it", task.id)

    def _fail(self, task: Task, error: Exception, lost: threading.Event) -> None:
        self.failed += 1
        if lost.is_set():
            self.log.warning("task %s failed after its lease was lost: %s", task.id, error)
            return
        message = f"{type(error).__name__}: {error}"
        try:
            if isinstance(error, PermanentError):
                outcome = task.fail(message, retry=False)
            elif isinstance(error, RetryLater):
                outcome = task.fail(message, retry=True, retry_in_seconds=error.seconds)
            else:
                outcome = task.fail(message, retry=True)
            self.log.warning("task %s (%s) failed: %s; now %s", task.id, task.type, message, outcome["status"])
        except LeaseLostError:
            self.log.warning("task %s: lease lost before the failure could be recorded", task.id)

    def _heartbeat(self, task: Task, done: threading.Event, lost: threading.Event) -> None:
        while not done.wait(self.heartbeat_interval):
            try:
                task.heartbeat(lease_seconds=self.lease_seconds)
            except LeaseLostError:
                lost.set()
                return
            except TaskManagerError as e:  # keep trying; the lease may still hold
                self.log.warning("task %s: heartbeat failed: %s", task.id, e)
