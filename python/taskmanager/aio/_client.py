"""The asyncio client: every method of :class:`taskmanager.Client`, run in threads of the
client's own so the event loop never waits on the library."""

from __future__ import annotations

import asyncio
import inspect
import concurrent.futures
import json
import logging
import threading
import datetime
from typing import (Any, Awaitable, Callable, Dict, Generator, Iterable, List, Mapping, NamedTuple, Optional, Tuple,
                    TypeVar, Union)

from .._errors import Code, error_for
from ..client import _KEEP, ClaimReport, Client, Task, statement_result
from ..results import (
    BulkReport,
    CompleteOutcome,
    Enqueued,
    Failed,
    Finished,
    Heartbeat,
    HistoryEntry,
    PruneReport,
    RateLimit,
    Recovery,
    Schedule,
    TickReport,
    Stats,
    TaskRecord,
    TaskType,
)

Json = Any
T = TypeVar("T")
log = logging.getLogger("taskmanager.aio")

# The library's own default for pool_max_connections: more threads than connections would
# only wait inside the library for a connection.
_DEFAULT_THREADS = 16


class AsyncTask:
    """A claimed task, for coroutines: the same attributes as :class:`taskmanager.Task`
    (``id``, ``type``, ``params``, ``priority``, ``attempts``, ``max_attempts``,
    ``lease_token``, ``lease_expires_at``) with awaitable ``complete``, ``fail``,
    ``heartbeat`` and ``release``. :attr:`sync` is the same task for code running in a thread.
    """

    def __init__(self, client: "AsyncClient", task: Task):
        self._client = client
        self.sync = task
        self.id = task.id
        self.type = task.type
        self.params = task.params
        self.priority = task.priority
        self.attempts = task.attempts
        self.max_attempts = task.max_attempts
        self.lease_token = task.lease_token
        self.lease_expires_at = task.lease_expires_at

    async def complete(self, result: Json = None) -> Finished:
        """Completes the task; repeating it is safe. Raises LeaseLostError if the lease is gone."""
        return await self._client.complete(self.id, self.lease_token, result)

    async def fail(self, message: str, retry: bool = True, retry_in_seconds: Optional[float] = None) -> Failed:
        """Fails the task; with ``retry`` and attempts left it runs again after a backoff."""
        return await self._client.fail(self.id, self.lease_token, message, retry=retry,
                                       retry_in_seconds=retry_in_seconds)

    async def heartbeat(self, progress: Optional[int] = None, lease_seconds: Optional[int] = None) -> Heartbeat:
        """Extends the lease (and records progress 0..100)."""
        result = await self._client.heartbeat(self.id, self.lease_token, progress=progress,
                                              lease_seconds=lease_seconds)
        self.lease_expires_at = self.sync.lease_expires_at = result["lease_expires_at"]
        return result

    async def release(self) -> Finished:
        """Gives the task back at once without counting the attempt."""
        return await self._client.release(self.id, self.lease_token)

    def __repr__(self) -> str:
        return f"AsyncTask(id={self.id}, type={self.type!r}, attempts={self.attempts}/{self.max_attempts})"


class AsyncClaimReport(NamedTuple):
    """The answer to :meth:`AsyncClient.claim_report`: as :class:`taskmanager.ClaimReport`,
    with :class:`AsyncTask` tasks."""

    tasks: List[AsyncTask]
    next_allowed_at: Optional[str]


class _Opening:
    """What :meth:`AsyncClient.open` returns: await it for the client, or use it with
    ``async with`` to have the client closed at the end of the block."""

    def __init__(self, opening: Callable[[], Awaitable["AsyncClient"]]):
        self._opening = opening
        self._client: Optional[AsyncClient] = None

    def __await__(self) -> Generator[Any, None, "AsyncClient"]:
        return self._opening().__await__()

    async def __aenter__(self) -> "AsyncClient":
        self._client = await self._opening()
        return self._client

    async def __aexit__(self, *exc: Any) -> None:
        if self._client is not None:
            await self._client.close()


class AsyncClient:
    """A connection to one queue database for asyncio code.

    Every call runs the library in a thread of a pool that belongs to this client (not the
    loop's default executor, which DNS lookups and file reads share: a call that waits on a
    lock for seconds must not starve them, nor they it). The C handle may be used from many
    threads at once, but must not be freed while a call is in flight, so :meth:`close` refuses
    new calls, waits for the running ones, and only then frees it.

    Open one with ``tm = await AsyncClient.open(config)`` or
    ``async with AsyncClient.open(config) as tm:`` (``config`` as for :class:`Client`), or wrap a
    sync client you already have: ``AsyncClient(client)``. A call cancelled while the library
    runs it still runs to its end (a C call cannot be interrupted); its answer is dropped, and
    tasks a cancelled ``claim``, ``claim_report`` or ``complete_and_claim`` obtained are
    released at once.

    A claim with ``wait_seconds`` runs in a second pool of threads of its own (as many), so
    that waiting claims never hold up the other calls: not the loop, and not the ``complete``
    that would free a ``max_running`` slot they wait for. :meth:`close` waits for them too
    (at most their ``wait_seconds``).
    """

    def __init__(self, client: Client, *, max_threads: Optional[int] = None, close_client: bool = True):
        if not isinstance(client, Client):
            raise TypeError(f"AsyncClient wraps a taskmanager.Client, not {type(client).__name__}; "
                            "use `await AsyncClient.open(config)` to open one from settings")
        self.sync = client
        self._close_client = close_client
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_threads or _DEFAULT_THREADS, thread_name_prefix="taskmanager")
        # Waiting claims: threads are started only when one is submitted.
        self._waiting = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_threads or _DEFAULT_THREADS, thread_name_prefix="taskmanager-wait")
        # Guards _closed against a submit racing close() from another thread.
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, config: Union[None, str, Mapping[str, Any]] = None, *,
             max_threads: Optional[int] = None) -> _Opening:
        """Opens a client (the library connects and checks the server: off the loop, too)."""
        threads = max_threads or _pool_size(config)

        async def opening() -> AsyncClient:
            client = await asyncio.get_running_loop().run_in_executor(None, Client, config)
            return cls(client, max_threads=threads)

        return _Opening(opening)

    # -- lifetime ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Refuses new calls, waits for those in flight, then frees the handle. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # shutdown(wait=True) blocks until every call in flight has returned: not on the loop.
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True)
        self._waiting.shutdown(wait=True)
        if self._close_client:
            self.sync.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "concurrent.futures.Future[T]":
        return self._submit_on(self._executor, fn, *args, **kwargs)

    def _submit_on(self, executor: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., T], *args: Any,
                   **kwargs: Any) -> "concurrent.futures.Future[T]":
        with self._lock:
            if self._closed:
                raise error_for(Code.INVALID_ARGUMENT, "the client is closed", None)
            return executor.submit(fn, *args, **kwargs)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.wrap_future(self._submit(fn, *args, **kwargs))

    async def _claiming(self, fn: Callable[..., T], tasks_of: Callable[[T], List[Task]],
                        *args: Any, **kwargs: Any) -> T:
        """Runs a call that leases tasks. If the caller is cancelled, nobody will work on what
        it claimed, so those tasks are released instead of waiting out their lease: by the
        thread itself when it finishes after the cancellation, or from here when the answer had
        already arrived. A call that may wait (``wait_seconds``) runs on the waiting pool."""
        state = {"abandoned": False, "delivered": False}
        guard = threading.Lock()

        def run() -> T:
            out = fn(*args, **kwargs)
            with guard:
                abandoned = state["abandoned"]
                state["delivered"] = not abandoned
            if abandoned:
                _release_all(tasks_of(out))
            return out

        future = self._submit_on(self._waiting if kwargs.get("wait_seconds") else self._executor, run)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            with guard:
                state["abandoned"] = True
                delivered = state["delivered"]
            if delivered:
                # The thread has its answer but may not have handed it to the future yet;
                # the callback runs when it has (at once if it already has) and only submits.
                future.add_done_callback(lambda f: self._release_later(tasks_of(f.result())))
            raise

    def _release_later(self, tasks: List[Task]) -> None:
        try:
            self._submit(_release_all, tasks)
        except Exception as e:  # closed meanwhile: the leases expire on their own
            log.warning("%d task(s) claimed by a cancelled call are left to their lease: %s", len(tasks), e)

    def _tasks(self, tasks: List[Task]) -> List[AsyncTask]:
        return [AsyncTask(self, t) for t in tasks]

    # -- schema and types -------------------------------------------------------------------

    async def migrate(self, to: Optional[int] = None) -> None:
        """Creates or upgrades the schema (up to version ``to`` when given, as
        :meth:`taskmanager.Client.migrate`). Idempotent; the only call that runs DDL."""
        await self._call(self.sync.migrate, to)

    async def register_type(self, name: str, param_schema: Mapping[str, Any],
                            version: Union[str, int] = "1") -> TaskType:
        """See :meth:`Client.register_type`."""
        return await self._call(self.sync.register_type, name, param_schema, version)

    async def get_type(self, name: str) -> TaskType:
        return await self._call(self.sync.get_type, name)

    async def list_types(self) -> List[TaskType]:
        return await self._call(self.sync.list_types)

    async def set_type_active(self, name: str, active: bool) -> TaskType:
        return await self._call(self.sync.set_type_active, name, active)

    # -- flow control -------------------------------------------------------------------------

    async def pause_type(self, name: str, until: Union[None, str, datetime.datetime] = None) -> TaskType:
        """See :meth:`Client.pause_type`."""
        return await self._call(self.sync.pause_type, name, until)

    async def resume_type(self, name: str) -> TaskType:
        """See :meth:`Client.resume_type`."""
        return await self._call(self.sync.resume_type, name)

    async def set_type_limits(self, name: str, *, max_running: Optional[int] = _KEEP,
                              rate: Optional[RateLimit] = _KEEP) -> TaskType:
        """See :meth:`Client.set_type_limits`: an argument left out keeps that limit, None
        removes it."""
        return await self._call(self.sync.set_type_limits, name, max_running=max_running, rate=rate)

    # -- producing ----------------------------------------------------------------------------

    async def enqueue(
        self,
        type_name: str,
        params: Json,
        *,
        priority: Optional[int] = None,
        delay_seconds: Optional[float] = None,
        run_at: Optional[str] = None,
        max_attempts: Optional[int] = None,
        dedupe_key: Optional[str] = None,
        dedupe_scope: Optional[str] = None,
        unique_for_seconds: Optional[int] = None,
    ) -> Enqueued:
        """See :meth:`Client.enqueue`."""
        return await self._call(self.sync.enqueue, type_name, params, priority=priority,
                                delay_seconds=delay_seconds, run_at=run_at, max_attempts=max_attempts,
                                dedupe_key=dedupe_key, dedupe_scope=dedupe_scope,
                                unique_for_seconds=unique_for_seconds)

    async def enqueue_statement(self, type_name: str, params: Json, **options: Any) -> Dict[str, Any]:
        """See :meth:`Client.enqueue_statement`."""
        return await self._call(self.sync.enqueue_statement, type_name, params, **options)

    async def enqueue_with(self, cursor: Any, type_name: str, params: Json, **options: Any) -> Enqueued:
        """See :meth:`Client.enqueue_with`; ``cursor`` may be an asyncio driver's cursor (its
        ``execute`` and ``fetchone`` awaited) or a DB-API one."""
        statement = await self.enqueue_statement(type_name, params, **options)

        async def done(result: Any) -> Any:
            return await result if inspect.isawaitable(result) else result

        for sql in statement["statements"]:
            await done(cursor.execute(sql))
        await done(cursor.execute(statement["select_sql"]))
        return statement_result(statement, await done(cursor.fetchone()))

    async def enqueue_batch(self, items: Iterable[Mapping[str, Any]]) -> List[Enqueued]:
        # list() here: a generator must not be consumed in another thread while its owner runs.
        return await self._call(self.sync.enqueue_batch, list(items))

    # -- working ------------------------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        *,
        types: Optional[List[str]] = None,
        type_prefix: Optional[str] = None,
        type_pattern: Optional[str] = None,
        type_ids: Optional[List[int]] = None,
        limit: Optional[int] = None,
        lease_seconds: Optional[int] = None,
        sort_by: Optional[str] = None,
        sort_order: Optional[str] = None,
        wait_seconds: Optional[float] = None,
    ) -> List[AsyncTask]:
        """See :meth:`Client.claim`; the tasks finish themselves with awaitable methods. A
        waiting claim (``wait_seconds``) waits in a thread: the loop runs on meanwhile."""
        tasks = await self._claiming(self.sync.claim, _same, worker_id, types=types, type_prefix=type_prefix,
                                     type_pattern=type_pattern, type_ids=type_ids, limit=limit,
                                     lease_seconds=lease_seconds, sort_by=sort_by, sort_order=sort_order,
                                     wait_seconds=wait_seconds)
        return self._tasks(tasks)

    async def claim_report(
        self,
        worker_id: str,
        *,
        types: Optional[List[str]] = None,
        type_prefix: Optional[str] = None,
        type_pattern: Optional[str] = None,
        type_ids: Optional[List[int]] = None,
        limit: Optional[int] = None,
        lease_seconds: Optional[int] = None,
        sort_by: Optional[str] = None,
        sort_order: Optional[str] = None,
        wait_seconds: Optional[float] = None,
    ) -> AsyncClaimReport:
        """See :meth:`Client.claim_report`: the tasks (as :class:`AsyncTask`) and
        ``next_allowed_at``."""
        report = await self._claiming(self.sync.claim_report, _report_tasks, worker_id, types=types,
                                      type_prefix=type_prefix, type_pattern=type_pattern, type_ids=type_ids,
                                      limit=limit, lease_seconds=lease_seconds, sort_by=sort_by,
                                      sort_order=sort_order, wait_seconds=wait_seconds)
        return AsyncClaimReport(self._tasks(report.tasks), report.next_allowed_at)

    async def heartbeat(self, task_id: int, lease_token: str, *, progress: Optional[int] = None,
                        lease_seconds: Optional[int] = None) -> Heartbeat:
        return await self._call(self.sync.heartbeat, task_id, lease_token, progress=progress,
                                lease_seconds=lease_seconds)

    async def complete(self, task_id: int, lease_token: str, result: Json = None) -> Finished:
        return await self._call(self.sync.complete, task_id, lease_token, result)

    async def heartbeat_as_worker(self, task_id: int, worker_id: str, *, progress: Optional[int] = None,
                                  lease_seconds: Optional[int] = None) -> Heartbeat:
        return await self._call(self.sync.heartbeat_as_worker, task_id, worker_id, progress=progress,
                                lease_seconds=lease_seconds)

    async def complete_as_worker(self, task_id: int, worker_id: str, result: Json = None) -> Finished:
        return await self._call(self.sync.complete_as_worker, task_id, worker_id, result)

    async def fail_as_worker(self, task_id: int, worker_id: str, message: str, *, retry: bool = True,
                             retry_in_seconds: Optional[float] = None) -> Failed:
        return await self._call(self.sync.fail_as_worker, task_id, worker_id, message, retry=retry,
                                retry_in_seconds=retry_in_seconds)

    async def complete_and_claim(
        self,
        task_id: int,
        lease_token: str,
        result: Json,
        worker_id: str,
        *,
        types: Optional[List[str]] = None,
        type_prefix: Optional[str] = None,
        type_pattern: Optional[str] = None,
        type_ids: Optional[List[int]] = None,
        limit: Optional[int] = None,
        lease_seconds: Optional[int] = None,
        wait_seconds: Optional[float] = None,
    ) -> Tuple[Finished, List[AsyncTask]]:
        """See :meth:`Client.complete_and_claim`."""
        completed, tasks = await self._claiming(
            self.sync.complete_and_claim, _second, task_id, lease_token, result, worker_id,
            types=types, type_prefix=type_prefix, type_pattern=type_pattern, type_ids=type_ids, limit=limit,
            lease_seconds=lease_seconds, wait_seconds=wait_seconds)
        return completed, self._tasks(tasks)

    async def complete_batch(self, items: Iterable[Mapping[str, Any]]) -> List[CompleteOutcome]:
        return await self._call(self.sync.complete_batch, list(items))

    async def fail(self, task_id: int, lease_token: str, message: str, *, retry: bool = True,
                   retry_in_seconds: Optional[float] = None) -> Failed:
        return await self._call(self.sync.fail, task_id, lease_token, message, retry=retry,
                                retry_in_seconds=retry_in_seconds)

    async def release(self, task_id: int, lease_token: str) -> Finished:
        return await self._call(self.sync.release, task_id, lease_token)

    # -- operating ----------------------------------------------------------------------------

    async def cancel(self, task_id: int, reason: Optional[str] = None) -> Finished:
        return await self._call(self.sync.cancel, task_id, reason)

    async def retry(self, task_id: int) -> Finished:
        return await self._call(self.sync.retry, task_id)

    async def cancel_where(self, *, type: Optional[str] = None, status: Optional[str] = None,
                           ids: Optional[List[int]] = None, before_id: Optional[int] = None,
                           older_than_seconds: Optional[int] = None, newer_than_seconds: Optional[int] = None,
                           worker_id: Optional[str] = None, text: Optional[str] = None,
                           dry_run: bool = False, reason: Optional[str] = None,
                           limit: Optional[int] = None) -> BulkReport:
        """See :meth:`Client.cancel_where`."""
        return await self._call(self.sync.cancel_where, type=type, status=status, ids=ids, before_id=before_id,
                                older_than_seconds=older_than_seconds, newer_than_seconds=newer_than_seconds,
                                worker_id=worker_id, text=text, dry_run=dry_run, reason=reason, limit=limit)

    async def retry_where(self, *, type: Optional[str] = None, status: Optional[str] = None,
                          ids: Optional[List[int]] = None, before_id: Optional[int] = None,
                          older_than_seconds: Optional[int] = None, newer_than_seconds: Optional[int] = None,
                          worker_id: Optional[str] = None, text: Optional[str] = None,
                          dry_run: bool = False, limit: Optional[int] = None) -> BulkReport:
        """See :meth:`Client.retry_where`."""
        return await self._call(self.sync.retry_where, type=type, status=status, ids=ids, before_id=before_id,
                                older_than_seconds=older_than_seconds, newer_than_seconds=newer_than_seconds,
                                worker_id=worker_id, text=text, dry_run=dry_run, limit=limit)

    async def recover_expired(self) -> Recovery:
        return await self._call(self.sync.recover_expired)

    # -- recurring tasks ----------------------------------------------------------------------

    async def schedule_put(self, name: str, type: str, cron: str, *, timezone: Optional[str] = None,
                           params: Optional[Mapping[str, Any]] = None, enabled: Optional[bool] = None,
                           misfire: Optional[str] = None,
                           misfire_grace_seconds: Optional[int] = None) -> Schedule:
        """See :meth:`taskmanager.Client.schedule_put`."""
        return await self._call(self.sync.schedule_put, name, type, cron, timezone=timezone, params=params,
                                enabled=enabled, misfire=misfire, misfire_grace_seconds=misfire_grace_seconds)

    async def schedule_get(self, name: str) -> Schedule:
        return await self._call(self.sync.schedule_get, name)

    async def schedule_list(self) -> List[Schedule]:
        return await self._call(self.sync.schedule_list)

    async def schedule_delete(self, name: str) -> Schedule:
        return await self._call(self.sync.schedule_delete, name)

    async def schedules_tick(self) -> TickReport:
        return await self._call(self.sync.schedules_tick)

    # -- reading ------------------------------------------------------------------------------

    async def get_task(self, task_id: int) -> TaskRecord:
        return await self._call(self.sync.get_task, task_id)

    async def list_tasks(self, *, type: Optional[str] = None, status: Optional[str] = None,
                         limit: Optional[int] = None, before_id: Optional[int] = None) -> List[TaskRecord]:
        return await self._call(self.sync.list_tasks, type=type, status=status, limit=limit, before_id=before_id)

    async def history(self, task_id: int) -> List[HistoryEntry]:
        return await self._call(self.sync.history, task_id)

    async def stats(self) -> Stats:
        return await self._call(self.sync.stats)

    async def metrics(self) -> str:
        return await self._call(self.sync.metrics)

    async def prune(self, older_than_seconds: int, *, statuses: Optional[List[str]] = None,
                    batch_size: Optional[int] = None, dry_run: bool = False,
                    max_batches: Optional[int] = None) -> PruneReport:
        return await self._call(self.sync.prune, older_than_seconds, statuses=statuses, batch_size=batch_size,
                                dry_run=dry_run, max_batches=max_batches)


def _same(tasks: List[Task]) -> List[Task]:
    return tasks


def _second(pair: Tuple[Finished, List[Task]]) -> List[Task]:
    return pair[1]


def _report_tasks(report: ClaimReport) -> List[Task]:
    return report.tasks


def _release_all(tasks: List[Task]) -> None:
    for task in tasks:
        try:
            task.release()
        except Exception as e:  # one that cannot be released waits out its lease
            log.warning("task %s claimed by a cancelled call could not be released: %s", task.id, e)


def _pool_size(config: Union[None, str, Mapping[str, Any]]) -> int:
    """The connection pool size the settings ask for, as the number of threads to run calls in."""
    try:
        settings = json.loads(config) if isinstance(config, str) else dict(config or {})
        return max(1, min(int(settings.get("pool_max_connections", _DEFAULT_THREADS)), 64))
    except (ValueError, TypeError):
        return _DEFAULT_THREADS  # the library itself reports bad settings when it opens
