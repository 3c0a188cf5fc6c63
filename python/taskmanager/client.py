"""The client: the whole task lifecycle and read side, with plain dicts and lists in and out
(typed as the TypedDicts of :mod:`taskmanager.results`)."""

from __future__ import annotations

import ctypes
import datetime
import json
import threading
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union

from . import _ffi
from ._errors import Code, error_for
from .results import (
    BulkReport,
    ClaimedTask,
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


def statement_result(statement: Mapping[str, Any], row: Any) -> Enqueued:
    """The enqueue result from the row of an enqueue statement's ``select_sql`` (a tuple, or a
    mapping from a dict cursor)."""
    if row is None:
        raise error_for(Code.DATABASE, "enqueue_with: the task holding the key was not found after its INSERT", None)
    if isinstance(row, Mapping):
        row = (row["id"], row["status"], row["created"])
    status = row[1].decode() if isinstance(row[1], (bytes, bytearray)) else str(row[1])
    return Enqueued(id=int(row[0]), type=statement["type"], status=status,
                    deduplicated=int(row[2]) != 1, dedupe_key=statement["dedupe_key"])


class Task:
    """A claimed task. It knows its lease token, so it can finish itself.

    Attributes mirror the claim output: ``id``, ``type``, ``params``, ``priority``,
    ``attempts`` (including this one), ``max_attempts``, ``lease_token``, ``lease_expires_at``.
    """

    def __init__(self, client: "Client", data: ClaimedTask):
        self._client = client
        self.id: int = data["id"]
        self.type: str = data["type"]
        self.params: Json = data["params"]
        self.priority: int = data["priority"]
        self.attempts: int = data["attempts"]
        self.max_attempts: int = data["max_attempts"]
        self.lease_token: str = data["lease_token"]
        self.lease_expires_at: str = data["lease_expires_at"]

    def complete(self, result: Json = None) -> Finished:
        """Completes the task; repeating it is safe. Raises LeaseLostError if the lease is gone."""
        return self._client.complete(self.id, self.lease_token, result)

    def fail(self, message: str, retry: bool = True, retry_in_seconds: Optional[float] = None) -> Failed:
        """Fails the task; with ``retry`` and attempts left it runs again after a backoff."""
        return self._client.fail(self.id, self.lease_token, message, retry=retry, retry_in_seconds=retry_in_seconds)

    def heartbeat(self, progress: Optional[int] = None, lease_seconds: Optional[int] = None) -> Heartbeat:
        """Extends the lease (and records progress 0..100)."""
        result = self._client.heartbeat(self.id, self.lease_token, progress=progress, lease_seconds=lease_seconds)
        self.lease_expires_at = result["lease_expires_at"]
        return result

    def release(self) -> Finished:
        """Gives the task back at once without counting the attempt."""
        return self._client.release(self.id, self.lease_token)

    def __repr__(self) -> str:
        return f"Task(id={self.id}, type={self.type!r}, attempts={self.attempts}/{self.max_attempts})"


class ClaimReport(NamedTuple):
    """The answer to :meth:`Client.claim_report`: the claimed ``tasks`` (maybe none) and
    ``next_allowed_at``, when a rate-limited or paused-until type that has runnable tasks may
    start its next one (RFC 3339 UTC), or None. A tuple too: ``tasks, next_at = ...``."""

    tasks: List[Task]
    next_allowed_at: Optional[str]


# The default of set_type_limits' arguments: "leave this limit as it is" (None removes it).
_KEEP: Any = type("Keep", (), {"__repr__": lambda self: "<keep>", "__slots__": ()})()


def _options(values: Mapping[str, Any]) -> Optional[bytes]:
    present = {k: v for k, v in values.items() if v is not None}
    return _ffi.encode_json(present, "options") if present else None


def _instant(value: Union[None, str, datetime.datetime], name: str) -> Optional[str]:
    """An instant for the library: text as given, an aware datetime as RFC 3339 UTC."""
    if not isinstance(value, datetime.datetime):
        return value
    if value.utcoffset() is None:
        raise error_for(Code.INVALID_ARGUMENT, f"{name}: a datetime without a time zone is ambiguous; "
                        "give it one (datetime.timezone.utc)", None)
    utc = value.astimezone(datetime.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{utc.microsecond:06d}" if utc.microsecond else "") + "Z"


def _selection(type: Optional[str], status: Optional[str], ids: Optional[List[int]], before_id: Optional[int],
               older_than_seconds: Optional[int], newer_than_seconds: Optional[int], worker_id: Optional[str],
               text: Optional[str]) -> bytes:
    """The filter of a bulk call; always sent, so that an empty one is the library's refusal."""
    values = dict(type=type, status=status, ids=ids, before_id=before_id, older_than_seconds=older_than_seconds,
                  newer_than_seconds=newer_than_seconds, worker_id=worker_id, text=text)
    return _ffi.encode_json({k: v for k, v in values.items() if v is not None}, "filter")


class Client:
    """A connection to one queue database.

    ``config`` is a dict (keys as in the README: ``db_host``, ``db_name``, ... or
    ``database_url``), a JSON string, or None to read the ``TASKMANAGER_*`` environment
    variables. Thread-safe: share one client between threads. Usable after ``os.fork()``:
    the child opens its own connections. Use it as a context manager or call :meth:`close`.
    """

    def __init__(self, config: Union[None, str, Mapping[str, Any]] = None):
        raw = config if config is None or isinstance(config, str) else json.dumps(dict(config))
        handle = ctypes.c_void_p()
        _ffi.check(_ffi.lib.tm_client_open(_ffi.text(raw, "config"), ctypes.byref(handle)))
        self._handle: Optional[int] = handle.value
        self._lock = threading.Lock()

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Frees the handle. Idempotent. Do not call while other threads still use the client."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            _ffi.lib.tm_client_free(handle)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def _h(self) -> int:
        handle = self._handle
        if not handle:
            raise error_for(Code.INVALID_ARGUMENT, "the client is closed", None)
        return handle

    # -- schema and types -------------------------------------------------------------------

    def migrate(self, to: Optional[int] = None) -> None:
        """Creates or upgrades the schema. Idempotent; the only call that runs DDL. With ``to``,
        stops at that schema version (during a rolling deploy: 6 while the previous release
        still runs, then a plain migrate)."""
        if to is None:
            _ffi.check(_ffi.lib.tm_migrate(self._h))
        else:
            _ffi.check(_ffi.lib.tm_migrate_to(self._h, int(to)))

    def register_type(self, name: str, param_schema: Mapping[str, Any],
                      version: Union[str, int] = "1") -> TaskType:
        """Registers a task type; the same name+version+schema again is a no-op, another version
        (a label such as ``"1.0.0"``) replaces the schema, and the same version with another
        schema raises ConflictError."""
        definition = {"name": name, "version": str(version), "param_schema": param_schema}
        return _ffi.call_json("tm_type_register", self._h, _ffi.encode_json(definition, "type"))

    def get_type(self, name: str) -> TaskType:
        return _ffi.call_json("tm_type_get", self._h, _ffi.text(name, "name"))

    def list_types(self) -> List[TaskType]:
        return _ffi.call_json("tm_type_list", self._h)

    def set_type_active(self, name: str, active: bool) -> TaskType:
        """A deactivated type refuses new tasks; its queued tasks still run."""
        return _ffi.call_json("tm_type_set_active", self._h, _ffi.text(name, "name"), bool(active))

    # -- flow control -------------------------------------------------------------------------

    def pause_type(self, name: str, until: Union[None, str, datetime.datetime] = None) -> TaskType:
        """Pauses a type: claims that begin after this returns hand out none of its tasks, until
        :meth:`resume_type` or, with ``until``, until then (an aware ``datetime`` or RFC 3339
        UTC text such as ``"2026-12-24T18:00:00Z"``; in the future, at most a year ahead).
        Enqueues are still accepted, tasks already claimed finish normally, and paused tasks
        stay pending without spending an attempt. A bad ``until`` raises InvalidArgumentError
        naming it; an unknown type NotFoundError. Returns the type (``paused``, ``paused_until``)."""
        until = _instant(until, "until")
        options = None if until is None else _ffi.encode_json({"until": until}, "options")
        return _ffi.call_json("tm_type_pause", self._h, _ffi.text(name, "name"), options)

    def resume_type(self, name: str) -> TaskType:
        """Ends a pause at once. Returns the type."""
        return _ffi.call_json("tm_type_resume", self._h, _ffi.text(name, "name"))

    def set_type_limits(self, name: str, *, max_running: Optional[int] = _KEEP,
                        rate: Optional[RateLimit] = _KEEP) -> TaskType:
        """Sets a type's flow limits. Leave an argument out to keep that limit as it is; pass
        None to remove it. A dict of limits works too: ``set_type_limits(name, **limits)``.

        ``max_running`` (1 to 100000): at most this many of the type's tasks hold a lease at any
        moment, across every process and host; a claim skips a saturated type and takes other
        work. ``rate``: ``{"limit": 1..100000, "per_seconds": 1..31536000, "burst": 0..(100000 - limit)}``
        (``burst`` optional, default 0): claims start at most ``limit + burst`` of its tasks in
        any window of ``per_seconds`` (sliding, counted at claim). A bad value raises
        InvalidArgumentError naming the field (``max_running``, ``rate.limit``,
        ``rate.per_seconds``, ``rate.burst``). Returns the type (``max_running``, ``rate``)."""
        limits: Dict[str, Any] = {}
        if max_running is not _KEEP:
            limits["max_running"] = max_running
        if rate is not _KEEP:
            limits["rate"] = None if rate is None else dict(rate)
        return _ffi.call_json("tm_type_set_limits", self._h, _ffi.text(name, "name"),
                              _ffi.encode_json(limits, "limits"))

    # -- producing ----------------------------------------------------------------------------

    def enqueue(
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
        """Enqueues a task. Returns ``{"id", "type", "status", "deduplicated", "dedupe_key"}``.

        ``unique_for_seconds`` (1 to 31536000): the dedupe key blocks a new task only while the
        task holding it is younger than this; after it, the same enqueue creates a new task.
        """
        options = _options(dict(priority=priority, delay_seconds=delay_seconds, run_at=run_at,
                                max_attempts=max_attempts, dedupe_key=dedupe_key, dedupe_scope=dedupe_scope,
                                unique_for_seconds=unique_for_seconds))
        return _ffi.call_json("tm_task_enqueue", self._h, _ffi.text(type_name, "type_name"),
                              _ffi.encode_json(params, "params"), options)

    def enqueue_statement(self, type_name: str, params: Json, **options: Any) -> Dict[str, Any]:
        """The enqueue of one task as SQL for your own connection and transaction:
        ``{"sql", "history_sql", "statements", "select_sql", "type", "dedupe_key"}``. Run
        ``statements`` in order inside your transaction; ``select_sql`` then reads
        ``(id, status, created)``. Options as for :meth:`enqueue` but ``unique_for_seconds``."""
        return _ffi.call_json("tm_task_enqueue_statement", self._h, _ffi.text(type_name, "type_name"),
                              _ffi.encode_json(params, "params"), _options(dict(options)))

    def enqueue_with(self, cursor: Any, type_name: str, params: Json, **options: Any) -> Enqueued:
        """Enqueues a task inside your own transaction: the statements run on ``cursor`` (a
        DB-API cursor of any MySQL driver), so the task exists if and only if your transaction
        commits. A task already holding the key makes the INSERT a no-op and is the answer
        (``deduplicated`` true). The driver's errors are its own."""
        statement = self.enqueue_statement(type_name, params, **options)
        for sql in statement["statements"]:
            cursor.execute(sql)
        cursor.execute(statement["select_sql"])
        return statement_result(statement, cursor.fetchone())

    def enqueue_batch(self, items: Iterable[Mapping[str, Any]]) -> List[Enqueued]:
        """Enqueues ``[{"type", "params", "options"?}, ...]`` in one transaction, all or nothing."""
        return _ffi.call_json("tm_task_enqueue_batch", self._h, _ffi.encode_json(list(items), "items"))

    # -- working ------------------------------------------------------------------------------

    def claim(
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
    ) -> List[Task]:
        """Claims up to ``limit`` runnable tasks; an empty list when there are none. By default
        highest priority first, then oldest; ``sort_by`` (created_at, priority, id, attempts)
        and ``sort_order`` (asc, desc) choose another order, ties by id. Types: at most one of
        ``types``, ``type_prefix`` and ``type_pattern`` (SQL LIKE: ``%``, ``_``, ``\\``
        escapes; case-insensitive), and ``type_ids``; a type must pass both.

        ``wait_seconds`` (0 to 60): when nothing is claimable, wait (holding no transaction or
        lock, and not the GIL) until a task is, or return ``[]`` at the deadline. Paused types
        and types at their ``max_running`` or rate limit are skipped; :meth:`claim_report` also
        says when a limited type may start its next task."""
        options = _options(dict(types=types, type_prefix=type_prefix, type_pattern=type_pattern,
                                type_ids=type_ids, limit=limit, lease_seconds=lease_seconds,
                                sort_by=sort_by, sort_order=sort_order, wait_seconds=wait_seconds))
        rows = _ffi.call_json("tm_task_claim", self._h, _ffi.text(worker_id, "worker_id"), options)
        return [Task(self, row) for row in rows]

    def claim_report(
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
    ) -> ClaimReport:
        """:meth:`claim` that also says when to try again: a :class:`ClaimReport` of the
        ``tasks`` and ``next_allowed_at`` (RFC 3339 UTC, or None), when a rate-limited or
        paused-until type that has runnable tasks may start its next one."""
        options = {k: v for k, v in dict(types=types, type_prefix=type_prefix, type_pattern=type_pattern,
                                          type_ids=type_ids, limit=limit, lease_seconds=lease_seconds,
                                          sort_by=sort_by, sort_order=sort_order,
                                          wait_seconds=wait_seconds).items() if v is not None}
        options["report"] = True
        out = _ffi.call_json("tm_task_claim", self._h, _ffi.text(worker_id, "worker_id"),
                             _ffi.encode_json(options, "options"))
        return ClaimReport([Task(self, row) for row in out["tasks"]], out.get("next_allowed_at"))

    def heartbeat(self, task_id: int, lease_token: str, *, progress: Optional[int] = None,
                  lease_seconds: Optional[int] = None) -> Heartbeat:
        options = _options(dict(progress=progress, lease_seconds=lease_seconds))
        return _ffi.call_json("tm_task_heartbeat", self._h, task_id, _ffi.text(lease_token, "lease_token"), options)

    def complete(self, task_id: int, lease_token: str, result: Json = None) -> Finished:
        return _ffi.call_json("tm_task_complete", self._h, task_id, _ffi.text(lease_token, "lease_token"),
                              _ffi.encode_json(result, "result"))

    def heartbeat_as_worker(self, task_id: int, worker_id: str, *, progress: Optional[int] = None,
                            lease_seconds: Optional[int] = None) -> Heartbeat:
        """``heartbeat`` for a caller without a lease token: the task must be claimed by ``worker_id``."""
        options = _options(dict(progress=progress, lease_seconds=lease_seconds))
        return _ffi.call_json("tm_task_heartbeat_as_worker", self._h, task_id, _ffi.text(worker_id, "worker_id"),
                              options)

    def complete_as_worker(self, task_id: int, worker_id: str, result: Json = None) -> Finished:
        """``complete`` for a caller without a lease token (the original system's workers): the
        task must be claimed by ``worker_id``. A worker id is no fence; prefer the token."""
        return _ffi.call_json("tm_task_complete_as_worker", self._h, task_id, _ffi.text(worker_id, "worker_id"),
                              _ffi.encode_json(result, "result"))

    def fail_as_worker(self, task_id: int, worker_id: str, message: str, *, retry: bool = True,
                       retry_in_seconds: Optional[float] = None) -> Failed:
        """``fail`` for a caller without a lease token: the task must be claimed by ``worker_id``."""
        options = _options(dict(retry=retry, retry_in_seconds=retry_in_seconds))
        return _ffi.call_json("tm_task_fail_as_worker", self._h, task_id, _ffi.text(worker_id, "worker_id"),
                              _ffi.text(message, "message"), options)

    def complete_and_claim(
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
    ) -> Tuple[Finished, List[Task]]:
        """A worker's loop step in one round trip and one commit: completes the task it holds
        and, unless that failed, claims the next ones. Returns ``(completed, claimed)``. A stale
        token raises LeaseLostError and claims nothing; a repeat answers ``repeated`` and claims too.
        With ``wait_seconds`` the complete commits first, then the claim waits as in :meth:`claim`."""
        options = _options(dict(types=types, type_prefix=type_prefix, type_pattern=type_pattern,
                                type_ids=type_ids, limit=limit, lease_seconds=lease_seconds,
                                wait_seconds=wait_seconds))
        out = _ffi.call_json("tm_task_complete_and_claim", self._h, task_id, _ffi.text(lease_token, "lease_token"),
                             _ffi.encode_json(result, "result"), _ffi.text(worker_id, "worker_id"), options)
        return out["completed"], [Task(self, row) for row in out["claimed"]]

    def complete_batch(self, items: Iterable[Mapping[str, Any]]) -> List[CompleteOutcome]:
        """Completes ``[{"id", "lease_token", "result"?}, ...]`` in one transaction; an outcome per task."""
        return _ffi.call_json("tm_task_complete_batch", self._h, _ffi.encode_json(list(items), "items"))

    def fail(self, task_id: int, lease_token: str, message: str, *, retry: bool = True,
             retry_in_seconds: Optional[float] = None) -> Failed:
        options = _options(dict(retry=retry, retry_in_seconds=retry_in_seconds))
        return _ffi.call_json("tm_task_fail", self._h, task_id, _ffi.text(lease_token, "lease_token"),
                              _ffi.text(message, "message"), options)

    def release(self, task_id: int, lease_token: str) -> Finished:
        return _ffi.call_json("tm_task_release", self._h, task_id, _ffi.text(lease_token, "lease_token"))

    # -- operating ----------------------------------------------------------------------------

    def cancel(self, task_id: int, reason: Optional[str] = None) -> Finished:
        return _ffi.call_json("tm_task_cancel", self._h, task_id, _ffi.text(reason, "reason"))

    def retry(self, task_id: int) -> Finished:
        return _ffi.call_json("tm_task_retry", self._h, task_id)

    def cancel_where(self, *, type: Optional[str] = None, status: Optional[str] = None,
                     ids: Optional[List[int]] = None, before_id: Optional[int] = None,
                     older_than_seconds: Optional[int] = None, newer_than_seconds: Optional[int] = None,
                     worker_id: Optional[str] = None, text: Optional[str] = None,
                     dry_run: bool = False, reason: Optional[str] = None,
                     limit: Optional[int] = None) -> BulkReport:
        """Cancels every task the filter selects (at least one of ``ids``, ``type``, ``status``,
        ``worker_id``, ``text``), each as :meth:`cancel` would, newest first, up to ``limit``
        (default 1000, at most 10000). Tasks in other states are listed in ``skipped``, not
        raised. With ``dry_run`` nothing changes and the report says what would."""
        selection = _selection(type, status, ids, before_id, older_than_seconds, newer_than_seconds, worker_id, text)
        options = _options(dict(dry_run=dry_run, reason=reason, limit=limit))
        return _ffi.call_json("tm_tasks_cancel_where", self._h, selection, options)

    def retry_where(self, *, type: Optional[str] = None, status: Optional[str] = None,
                    ids: Optional[List[int]] = None, before_id: Optional[int] = None,
                    older_than_seconds: Optional[int] = None, newer_than_seconds: Optional[int] = None,
                    worker_id: Optional[str] = None, text: Optional[str] = None,
                    dry_run: bool = False, limit: Optional[int] = None) -> BulkReport:
        """Puts every failed or cancelled task the filter selects back to pending, each as
        :meth:`retry` would; otherwise as :meth:`cancel_where`."""
        selection = _selection(type, status, ids, before_id, older_than_seconds, newer_than_seconds, worker_id, text)
        options = _options(dict(dry_run=dry_run, limit=limit))
        return _ffi.call_json("tm_tasks_retry_where", self._h, selection, options)

    def recover_expired(self) -> Recovery:
        return _ffi.call_json("tm_tasks_recover_expired", self._h)

    # -- recurring tasks ----------------------------------------------------------------------

    def schedule_put(self, name: str, type: str, cron: str, *, timezone: Optional[str] = None,
                     params: Optional[Mapping[str, Any]] = None, enabled: Optional[bool] = None,
                     misfire: Optional[str] = None,
                     misfire_grace_seconds: Optional[int] = None) -> Schedule:
        """Creates or replaces (by name) a schedule: a task of ``type`` with ``params`` at every
        occurrence of ``cron`` (``"0 3 * * *"``; six fields with seconds first) in ``timezone``
        (IANA, default UTC). ``misfire``: ``"skip"`` (default), ``"once"`` or ``"backfill"``.
        A bad field raises InvalidArgumentError naming it; an unknown type NotFoundError."""
        definition = {"name": name, "type": type, "cron": cron}
        for key, value in (("timezone", timezone), ("params", params), ("enabled", enabled),
                           ("misfire", misfire), ("misfire_grace_seconds", misfire_grace_seconds)):
            if value is not None:
                definition[key] = value
        return _ffi.call_json("tm_schedule_put", self._h, _ffi.encode_json(definition, "schedule"))

    def schedule_get(self, name: str) -> Schedule:
        return _ffi.call_json("tm_schedule_get", self._h, _ffi.text(name, "name"))

    def schedule_list(self) -> List[Schedule]:
        return _ffi.call_json("tm_schedule_list", self._h)

    def schedule_delete(self, name: str) -> Schedule:
        """Deletes a schedule (its tasks stay); answers it as it was."""
        return _ffi.call_json("tm_schedule_delete", self._h, _ffi.text(name, "name"))

    def schedules_tick(self) -> TickReport:
        """Enqueues every due occurrence now, each exactly once however many processes tick
        (claims tick too; call this from cron where no worker runs)."""
        return _ffi.call_json("tm_schedules_tick", self._h)

    # -- reading ------------------------------------------------------------------------------

    def get_task(self, task_id: int) -> TaskRecord:
        return _ffi.call_json("tm_task_get", self._h, task_id)

    def list_tasks(self, *, type: Optional[str] = None, status: Optional[str] = None,
                   limit: Optional[int] = None, before_id: Optional[int] = None) -> List[TaskRecord]:
        options = _options(dict(type=type, status=status, limit=limit, before_id=before_id))
        return _ffi.call_json("tm_task_list", self._h, options)

    def history(self, task_id: int) -> List[HistoryEntry]:
        return _ffi.call_json("tm_task_history", self._h, task_id)

    def stats(self) -> Stats:
        """Counts by type and status, oldest pending, expired leases, the last hour per minute,
        the workers seen, and ``flow`` for paused or limited types (see ``tm_stats`` in the header)."""
        return _ffi.call_json("tm_stats", self._h)

    def metrics(self) -> str:
        """The same figures as Prometheus text exposition."""
        return (_ffi.call_text("tm_stats_prometheus", self._h) or b"").decode()

    def prune(self, older_than_seconds: int, *, statuses: Optional[List[str]] = None,
              batch_size: Optional[int] = None, dry_run: bool = False,
              max_batches: Optional[int] = None) -> PruneReport:
        """Deletes tasks that finished at least ``older_than_seconds`` ago, with their history,
        in short transactions. Returns ``{"tasks", "history", "batches", "done", "dry_run"}``."""
        options = _options(dict(older_than_seconds=older_than_seconds, statuses=statuses,
                                batch_size=batch_size, dry_run=dry_run, max_batches=max_batches))
        return _ffi.call_json("tm_tasks_prune", self._h, options)
