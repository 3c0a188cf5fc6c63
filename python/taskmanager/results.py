"""The shapes of what the library answers, as TypedDicts.

A TypedDict is a plain ``dict`` at run time, so code that indexes the answers keeps working;
a type checker (the package ships ``py.typed``) now knows each key and its type. The shapes are
the JSON documents described for each function in ``taskmanager.h``. Timestamps are UTC text,
``"YYYY-MM-DD HH:MM:SS.ffffff"``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TypedDict

Json = Any


class RateLimit(TypedDict, total=False):
    """A type's rate limit: claims start at most ``limit + burst`` of its tasks in any window
    of ``per_seconds`` seconds (sliding, counted at claim). ``burst`` defaults to 0."""

    limit: int
    per_seconds: int
    burst: int


class TaskType(TypedDict, total=False):
    """A task type (``register_type``, ``get_type``, ``list_types``, ``set_type_active``,
    ``pause_type``, ``resume_type``, ``set_type_limits``). ``changed`` is present only in the
    answer to ``register_type``. ``paused_until`` (RFC 3339 UTC) is None when the type is not
    paused or paused until resumed; ``max_running`` and ``rate`` are None without that limit."""

    id: int
    name: str
    version: str
    param_schema: Json
    is_active: bool
    paused: bool
    paused_until: Optional[str]
    max_running: Optional[int]
    rate: Optional[RateLimit]
    created_at: str
    updated_at: str
    changed: bool


class Enqueued(TypedDict):
    """The answer to ``enqueue`` (and each item of ``enqueue_batch``); a duplicate names the
    task that already holds the key, with ``deduplicated`` true."""

    id: int
    type: str
    status: str
    deduplicated: bool
    dedupe_key: str


class ClaimedTask(TypedDict):
    """A claimed task as the library hands it over; :class:`taskmanager.Task` wraps it."""

    id: int
    type: str
    params: Json
    priority: int
    attempts: int
    max_attempts: int
    lease_token: str
    lease_expires_at: str


class Finished(TypedDict):
    """The answer to ``complete``, ``release``, ``cancel``, ``retry`` and the ``*_as_worker``
    completes: ``repeated`` is true when the call repeated an earlier one and changed nothing."""

    id: int
    status: str
    repeated: bool


class Failed(TypedDict):
    """The answer to ``fail``: ``status`` is ``pending`` again (at ``run_at``) while attempts
    remain and retry was asked for, ``failed`` otherwise."""

    id: int
    status: str
    attempts: int
    max_attempts: int
    run_at: str
    repeated: bool


class Heartbeat(TypedDict):
    """The answer to ``heartbeat``: the new end of the lease and the recorded progress."""

    id: int
    lease_expires_at: str
    progress: int


class CompleteOutcome(TypedDict, total=False):
    """One item of ``complete_batch``'s answer; ``code`` and ``message`` only when ``ok`` is false."""

    id: int
    ok: bool
    code: str
    message: str


class Recovery(TypedDict):
    """The answer to ``recover_expired``."""

    recovered: int
    requeued: int
    failed: int


class Schedule(TypedDict, total=False):
    """A recurring schedule (``schedule_put``, ``schedule_get``, ``schedule_list``,
    ``schedule_delete``). Times are RFC 3339 UTC; ``next_run_at`` is None while disabled.
    ``changed`` is present only in the answer to ``schedule_put``."""

    id: int
    name: str
    type: str
    cron: str
    timezone: str
    params: Json
    enabled: bool
    misfire: str
    misfire_grace_seconds: int
    next_run_at: Optional[str]
    last_run_at: Optional[str]
    created_at: str
    updated_at: str
    changed: bool


class TickReport(TypedDict):
    """The answer to ``schedules_tick``: ``enqueued`` items are ``{"schedule", "type",
    "scheduled_for", "task_id", "deduplicated"}``, ``missed`` items ``{"schedule", "first",
    "last"}`` (occurrences the misfire policy dropped), ``errors`` items ``{"schedule",
    "scheduled_for", "message"}``."""

    enqueued: List[Dict[str, Any]]
    missed: List[Dict[str, Any]]
    errors: List[Dict[str, Any]]


class TaskRecord(TypedDict):
    """A task with every column (``get_task``, ``list_tasks``)."""

    id: int
    type: str
    type_id: int
    status: str
    params: Json
    result: Json
    error_message: Optional[str]
    attempts: int
    max_attempts: int
    priority: int
    progress: int
    dedupe_key: str
    dedupe_scope: str
    claimed_by: Optional[str]
    claimed_at: Optional[str]
    lease_expires_at: Optional[str]
    run_at: str
    completed_at: Optional[str]
    created_at: str
    updated_at: str


class HistoryEntry(TypedDict):
    """One row of ``history``."""

    id: int
    task_id: int
    status_change: str
    worker_id: Optional[str]
    message: Optional[str]
    created_at: str


class QueueHealth(TypedDict):
    oldest_pending_seconds: Optional[float]
    expired_leases: int


class Throughput(TypedDict):
    """Counts per minute over the last hour and per hour over the last day, index 0 the most
    recent."""

    completed_per_minute: List[int]
    failed_per_minute: List[int]
    completed_per_hour: List[int]
    failed_per_hour: List[int]


class WorkerSeen(TypedDict):
    worker_id: str
    last_claim_at: Optional[str]
    claims_last_hour: int
    holding: int


class TypeFlow(TypedDict):
    """A paused or limited type in ``stats()["flow"]``: ``running`` tasks hold a lease now,
    ``started_in_window`` were started in the current window of its rate."""

    paused: bool
    paused_until: Optional[str]
    max_running: Optional[int]
    running: int
    rate: Optional[RateLimit]
    started_in_window: int


class _StatsAlways(TypedDict):
    types: Dict[str, Dict[str, int]]
    totals: Dict[str, int]
    queue: Dict[str, QueueHealth]
    throughput: Dict[str, Throughput]
    workers: List[WorkerSeen]
    generated_at: str


class Stats(_StatsAlways, total=False):
    """The answer to ``stats``: ``types`` maps a type name to counts by status (``pending``,
    ``claimed``, ``completed``, ``failed``, ``cancelled``), ``totals`` sums them. ``flow``,
    present only when some type is paused or limited, maps each such type to its
    :class:`TypeFlow`."""

    flow: Dict[str, TypeFlow]


class PruneReport(TypedDict):
    """The answer to ``prune``; ``done`` is false when ``max_batches`` stopped it early."""

    tasks: int
    history: int
    batches: int
    done: bool
    dry_run: bool


class Skipped(TypedDict):
    """A task a bulk action left alone: ``code`` is ``TM_CONFLICT`` (its status does not
    allow the action, or a retry would take an active task's dedupe key) or ``TM_NOT_FOUND``."""

    id: int
    code: str
    message: str


class BulkReport(TypedDict):
    """The answer to ``cancel_where`` and ``retry_where``: the ids changed (in a dry run: that
    would change), newest first; those already cancelled (``unchanged``); those refused. When
    ``next_before_id`` is set the limit stopped the call: pass it as ``before_id`` to go on."""

    action: str
    dry_run: bool
    matched: int
    changed: List[int]
    unchanged: List[int]
    skipped: List[Skipped]
    next_before_id: Optional[int]


__all__ = [
    "RateLimit", "TypeFlow", "TaskType", "Enqueued", "ClaimedTask", "Finished", "Failed", "Heartbeat", "CompleteOutcome",
    "Recovery", "TaskRecord", "HistoryEntry", "QueueHealth", "Throughput", "WorkerSeen", "Stats",
    "PruneReport", "Skipped", "BulkReport",
]
