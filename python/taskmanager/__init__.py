"""TaskManager for Python: a durable task queue on MySQL/MariaDB, through ctypes.

    from taskmanager import Client
    with Client({"database_url": "mysql://app:secret@127.0.0.1:3306/queue"}) as tm:
        tm.enqueue("email.send", {"to": "ada@example.com"})
        for task in tm.claim("worker-1", types=["email.send"]):
            task.complete({"sent": True})
"""

from ._errors import (
    Code,
    ConfigError,
    ConflictError,
    ConnectionFailedError,
    DatabaseError,
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
from .client import Client, Task
from .worker import PermanentError, RetryLater, Worker

__version__ = version()

__all__ = [
    "Client", "Task", "Worker", "PermanentError", "RetryLater", "Code", "version",
    "TaskManagerError", "InvalidArgumentError", "ConfigError", "NotFoundError", "TypeInactiveError",
    "InvalidSchemaError", "ValidationError", "LeaseLostError", "ConflictError", "ConnectionFailedError",
    "OutcomeUnknownError", "DatabaseError", "UnsupportedServerError", "SchemaOutdatedError",
    "InternalError", "LibraryNotFoundError",
]
