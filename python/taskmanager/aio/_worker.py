"""The asyncio worker loop: up to ``concurrency`` tasks at once, a heartbeat per task while its
handler runs, complete or fail each, and a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import os
import signal
import socket
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Union, cast

from .._errors import ConnectionFailedError, LeaseLostError, TaskManagerError
from ..client import Task
from ..worker import PermanentError, RetryLater
from ._client import AsyncClient, AsyncTask

log = logging.getLogger("taskmanager.aio.worker")

#: ``async def handler(task: AsyncTask)``, or a plain ``def handler(task: Task)`` run in a thread.
Handler = Union[Callable[[AsyncTask], Awaitable[Any]], Callable[[Task], Any]]


def _is_async(handler: Callable[..., Any]) -> bool:
    while isinstance(handler, functools.partial):
        handler = handler.func
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # an object whose __call__ is async def
    return call is not None and inspect.iscoroutinefunction(call)


class Worker:
    """Runs ``handlers[task.type](task)`` for each claimed task, up to ``concurrency`` at once.

    The semantics are those of :class:`taskmanager.Worker`: the handler's return value
    becomes the task's result; :class:`PermanentError` fails it for good, :class:`RetryLater`
    retries after its delay, any other exception retries with the exponential backoff while
    attempts remain. While a handler runs, its lease is extended every ``heartbeat_interval``
    seconds (default: a third of the lease; 0 turns heartbeats off); a result whose lease was
    lost anyway is dropped, not reported.

    An ``async def`` handler gets an :class:`AsyncTask` and runs on the loop; any other
    callable gets the sync :class:`Task` and runs in a thread of the worker's own (one per
    unit of concurrency, apart from the client's threads, so busy handlers never delay a
    heartbeat). :meth:`stop` (or SIGTERM/SIGINT after :meth:`install_signal_handlers`) claims
    nothing more and lets the tasks in hand finish; cancelling :meth:`run` instead cancels the
    async handlers and leaves their tasks to their lease (a handler thread cannot be stopped).

    With nothing in hand, the worker waits inside its claim (the client's ``wait_seconds``, in
    a thread of the client's waiting pool, so the loop runs on) instead of sleeping between
    polls: a task is taken as soon as it is claimable (at once when this process enqueued it,
    within a second from another process or host). One claim waits at most ``wait_seconds``
    (default 1, 0 to 60); a claim in progress cannot be interrupted, so that is also how long
    :meth:`stop` takes to end an idle worker. While tasks are in hand its claims do not wait,
    so that one finishing frees its slot at once: it polls for the free slots, pausing
    ``idle_min`` doubling up to ``idle_max`` seconds after an empty claim, or less when a task
    in hand finishes. ``wait_seconds=0`` always polls that way. ``idle_max`` is also the pause
    after a connection error.
    """

    def __init__(
        self,
        client: AsyncClient,
        handlers: Dict[str, Handler],
        *,
        worker_id: Optional[str] = None,
        concurrency: int = 1,
        lease_seconds: int = 60,
        heartbeat_interval: Optional[float] = None,
        idle_min: float = 0.1,
        idle_max: float = 5.0,
        wait_seconds: float = 1.0,
        logger: Optional[logging.Logger] = None,
    ):
        if not handlers:
            raise ValueError("give at least one handler")
        if not isinstance(client, AsyncClient):
            raise TypeError(f"the async Worker needs a taskmanager.aio.AsyncClient, not {type(client).__name__}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if not 0 <= wait_seconds <= 60:
            raise ValueError(f"wait_seconds must be from 0 to 60, got {wait_seconds}")
        self.client = client
        self.handlers = dict(handlers)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.heartbeat_interval = lease_seconds / 3 if heartbeat_interval is None else heartbeat_interval
        self.idle_min = idle_min
        self.idle_max = idle_max
        self.wait_seconds = wait_seconds
        self.log = logger or log
        self.processed = 0
        self.failed = 0
        self._stop_asked = False
        # Made in run(): an asyncio.Event belongs to the loop it is used on.
        self._stop_event: Optional[asyncio.Event] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._signals: List[int] = []

    # -- stopping -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Asks the loop to claim nothing more and return once the tasks in hand are done; an
        idle worker returns when its claim's wait ends, within ``wait_seconds``. Safe from any
        thread and from a signal handler."""
        self._stop_asked = True
        loop, event = self._loop, self._stop_event
        if loop is None or event is None:
            return  # run() has not started: it sees _stop_asked
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            event.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    @property
    def stopping(self) -> bool:
        return self._stop_asked

    async def wait_for_stop(self) -> None:
        """Returns once a stop was asked: a long handler may await it to checkpoint early."""
        if self._stop_event is None:
            raise RuntimeError("the worker is not running")
        await self._stop_event.wait()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop gracefully. Call it from a coroutine on the loop that
        runs the worker (main thread); :meth:`run` restores the default handling when it returns."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
            self._signals.append(signum)

    def _on_signal(self, signum: int) -> None:
        self.log.info("signal %s: stopping after the current task(s)", signum)
        self.stop()

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, *, stop_when_idle: bool = False, max_tasks: Optional[int] = None) -> int:
        """Works until :meth:`stop` (or until nothing is runnable and nothing is in hand with
        ``stop_when_idle``, or ``max_tasks`` are done). Returns the number of tasks handled."""
        self._loop = asyncio.get_running_loop()
        self._stop_event = stop = asyncio.Event()
        if self._stop_asked:
            stop.set()
        threads = concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency,
                                                        thread_name_prefix="taskmanager-handler")
        running: Set["asyncio.Future[None]"] = set()
        started = 0
        idle = self.idle_min
        types = sorted(self.handlers)
        # stop_when_idle asks whether anything is runnable now: it never waits.
        wait = None if stop_when_idle or not self.wait_seconds else self.wait_seconds
        self.log.info("worker %s started for %s (concurrency %d)", self.worker_id, ", ".join(types), self.concurrency)
        try:
            while not stop.is_set():
                room = self.concurrency - len(running)
                if max_tasks is not None:
                    room = min(room, max_tasks - started)
                if room <= 0:
                    if not running:
                        break  # max_tasks handed out and all of them finished
                    await self._pause(None, running)
                    continue
                # Wait in the claim only with nothing in hand: a claim that waits could not
                # notice a task in hand finishing, and so its slot coming free, until it returns.
                waiting = wait if not running else None
                try:
                    tasks = await self.client.claim(self.worker_id, types=types, limit=room,
                                                    lease_seconds=self.lease_seconds, wait_seconds=waiting)
                except ConnectionFailedError as e:
                    self.log.warning("database unavailable, retrying in %.1fs: %s", self.idle_max, e)
                    await self._pause(self.idle_max, set())
                    continue
                if stop.is_set():
                    # The stop came while the claim was in flight: these were never started.
                    await self._give_back(tasks)
                    break
                if not tasks:
                    if stop_when_idle and not running:
                        break
                    if waiting is not None:
                        continue  # the claim did the waiting
                    # Wake early when a task in hand finishes: it frees a slot, and a retried
                    # task may be runnable again at once.
                    await self._pause(None if stop_when_idle else idle, running)
                    idle = min(idle * 2, self.idle_max)
                    continue
                idle = self.idle_min
                for task in tasks:
                    handling = asyncio.ensure_future(self._handle(task, threads))
                    running.add(handling)
                    handling.add_done_callback(running.discard)
                    started += 1
            if running:
                await asyncio.gather(*running)
        except asyncio.CancelledError:
            for pending in list(running):
                pending.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        finally:
            threads.shutdown(wait=False)  # threads still running are those of cancelled handlers
            for signum in self._signals:
                self._loop.remove_signal_handler(signum)
            self._signals = []
        self.log.info("worker %s stopped after %d task(s)", self.worker_id, started)
        return started

    async def _pause(self, timeout: Optional[float], running: Set["asyncio.Future[None]"]) -> None:
        """Waits for a stop, for one of ``running`` to finish, or for ``timeout`` seconds."""
        assert self._stop_event is not None
        stopped: "asyncio.Future[Any]" = asyncio.ensure_future(self._stop_event.wait())
        waiting: Set["asyncio.Future[Any]"] = {stopped, *running}
        try:
            await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()

    async def _give_back(self, tasks: List[AsyncTask]) -> None:
        for task in tasks:
            try:
                await task.release()
            except TaskManagerError as e:
                self.log.warning("task %s could not be released; it returns after its lease: %s", task.id, e)

    # -- one task -----------------------------------------------------------------------------

    async def _handle(self, task: AsyncTask, threads: concurrent.futures.Executor) -> None:
        lost = asyncio.Event()
        done = asyncio.Event()
        beat = None
        if self.heartbeat_interval and self.heartbeat_interval > 0:
            beat = asyncio.ensure_future(self._heartbeat(task, done, lost))
        error: Optional[Exception] = None
        result: Any = None
        try:
            result = await self._invoke(self.handlers[task.type], task, threads)
        except Exception as e:  # the handler's failure is the task's failure
            error = e
        finally:
            done.set()
            if beat is not None:
                await beat
        try:
            if error is not None:
                await self._fail(task, error, lost)
            elif lost.is_set():
                self.log.warning("task %s: lease lost while running; result dropped", task.id)
            else:
                await task.complete(result)
                self.processed += 1
                self.log.info("task %s (%s) completed", task.id, task.type)
        except LeaseLostError:
            self.log.warning("task %s: lease lost before its outcome could be recorded; another worker owns it", task.id)
        except TaskManagerError as e:
            # Nothing was recorded (a result that is not JSON, the database gone): the task is
            # still leased to this worker and runs again after its lease, as after a crash.
            self.failed += 1
            self.log.error("task %s: its outcome could not be recorded, it returns after its lease: %s", task.id, e)

    async def _invoke(self, handler: Handler, task: AsyncTask, threads: concurrent.futures.Executor) -> Any:
        if _is_async(handler):
            return await handler(task)  # type: ignore[arg-type]
        in_thread = cast(Callable[[Task], Any], handler)
        result = await asyncio.get_running_loop().run_in_executor(threads, in_thread, task.sync)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited on purpose: say why below instead of a warning
            raise TypeError(f"the handler for {task.type!r} returned an awaitable from its thread: "
                            "declare it with `async def` so it runs on the loop")
        return result

    async def _fail(self, task: AsyncTask, error: Exception, lost: asyncio.Event) -> None:
        self.failed += 1
        if lost.is_set():
            self.log.warning("task %s failed after its lease was lost: %s", task.id, error)
            return
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, PermanentError):
            outcome = await task.fail(message, retry=False)
        elif isinstance(error, RetryLater):
            outcome = await task.fail(message, retry=True, retry_in_seconds=error.seconds)
        else:
            outcome = await task.fail(message, retry=True)
        self.log.warning("task %s (%s) failed: %s; now %s", task.id, task.type, message, outcome["status"])

    async def _heartbeat(self, task: AsyncTask, done: asyncio.Event, lost: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(done.wait(), self.heartbeat_interval)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await task.heartbeat(lease_seconds=self.lease_seconds)
            except LeaseLostError:
                lost.set()
                return
            except TaskManagerError as e:  # keep trying; the lease may still hold
                self.log.warning("task %s: heartbeat failed: %s", task.id, e)


__all__ = ["Worker", "Handler"]
