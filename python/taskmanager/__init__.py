"""TaskManager for Python: a durable task queue on MySQL/MariaDB, through ctypes.

    from taskmanager import Client
    with Client({"database_url": "mysql://app:secret@127.0.0.1:3306/queue"}) as tm:
        tm.enqueue("email.send", {"to": "ada@example.com"})
        for task in tm.claim("worker-1", types=["email.send"]):
            task.complete({"sent": True})

For asyncio, :mod:`taskmanager.aio` has ``AsyncClient`` and an async ``Worker``.
"""

from ._errors import (
    Code,
    ConfigError,
    ConflictError,
    ConnectionFailedError,
    DatabaseError,
    ErrorCode,
    InternalError,
    InvalidArgumentError,
    InvalidSchemaError,
    LeaseLostError,
    LibraryNotFoundError,
    NotFoundError,
    OutcomeUnknownError,
    SchemaOutdatedError,
    TaskManagerError,
    TypeInactiveError,
    UnsupportedServerError,
    ValidationError,
)
from ._ffi import version
from .client import ClaimReport, Client, Task
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
    Skipped,
    Stats,
    TaskRecord,
    TaskType,
    TypeFlow,
)
from .worker import PermanentError, RetryLater, Worker

__version__ = version()

__all__ = [
    "Client", "Task", "Worker", "PermanentError", "RetryLater", "ErrorCode", "Code", "version",
    "TaskType", "Enqueued", "ClaimedTask", "Finished", "Failed", "Heartbeat", "CompleteOutcome", "Recovery",
    "Schedule", "TickReport", "ClaimReport", "RateLimit", "TypeFlow",
    "TaskRecord", "HistoryEntry", "Stats", "PruneReport", "Skipped", "BulkReport",
    "TaskManagerError", "InvalidArgumentError", "ConfigError", "NotFoundError", "TypeInactiveError",
    "InvalidSchemaError", "ValidationError", "LeaseLostError", "ConflictError", "ConnectionFailedError",
    "OutcomeUnknownError", "DatabaseError", "UnsupportedServerError", "SchemaOutdatedError",
    "InternalError", "LibraryNotFoundError",
]
