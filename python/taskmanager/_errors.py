"""Exceptions: one base class and one subclass per error family, carrying the library's code."""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Dict, List, Optional, Union


class TaskManagerError(Exception):
    """Base of every error the library reports.

    ``code`` is the stable ``tm_code`` number as an :class:`ErrorCode` (a plain ``int`` only for a
    number this binding does not know yet), ``details`` the structured details the library
    attached (``{"server_code": 1213}``, the violation list, ...).
    """

    def __init__(self, code: int, message: str, details: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.code: Union[ErrorCode, int] = ErrorCode.of(code)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        # int(): an IntEnum prints as its name on Python < 3.11, and the number is what is documented.
        return f"{self.message} (code {int(self.code)})"


class InvalidArgumentError(TaskManagerError):
    """NULL, bad UTF-8, bad JSON, wrong shape, out of range, or too large (100, 101, 102)."""


class ConfigError(TaskManagerError):
    """Invalid or incomplete settings, or credentials the server refused (103)."""


class NotFoundError(TaskManagerError):
    """No such task or task type (200)."""


class TypeInactiveError(TaskManagerError):
    """The task type is deactivated and accepts no new tasks (201)."""


class InvalidSchemaError(TaskManagerError):
    """The parameter schema is not a valid JSON Schema (202)."""


class ValidationError(TaskManagerError):
    """Params do not match the type's schema (203); :attr:`violations` lists every one."""

    @property
    def violations(self) -> List[Dict[str, Any]]:
        return list((self.details or {}).get("violations", []))


class LeaseLostError(TaskManagerError):
    """The lease token no longer owns the task; nothing was changed (204). Drop the result."""


class ConflictError(TaskManagerError):
    """The request conflicts with the current state (205)."""


class ConnectionFailedError(TaskManagerError):
    """The database could not be reached; nothing was committed. Retry later (300)."""


class OutcomeUnknownError(ConnectionFailedError):
    """The connection broke during commit; repeat the same call, it is idempotent (302)."""


class DatabaseError(TaskManagerError):
    """The database refused a statement; ``details["server_code"]`` has its number (301)."""


class UnsupportedServerError(TaskManagerError):
    """The server lacks FOR UPDATE SKIP LOCKED: MariaDB 10.6+ or MySQL 8.0.1+ needed (303)."""


class SchemaOutdatedError(TaskManagerError):
    """The schema is older than the library needs: run :meth:`Client.migrate` (304)."""


class InternalError(TaskManagerError):
    """A bug in the library, caught before it could harm the process (900)."""


class LibraryNotFoundError(TaskManagerError):
    """libtaskmanager.so could not be found or loaded; the message lists the paths tried."""


class ErrorCode(IntEnum):
    """The library's stable error codes (``enum tm_code`` in ``taskmanager.h``, without the
    ``TM_`` prefix). An ``IntEnum``, so a member equals its number: ``e.code == 204`` holds.
    ``tests/error_table.rs`` reads this table as text and checks it against the library."""

    OK = 0
    NULL_PARAMETER = 100
    INVALID_ARGUMENT = 101
    PAYLOAD_TOO_LARGE = 102
    CONFIG = 103
    NOT_FOUND = 200
    TYPE_INACTIVE = 201
    INVALID_SCHEMA = 202
    VALIDATION_FAILED = 203
    LEASE_LOST = 204
    CONFLICT = 205
    CONNECTION = 300
    DATABASE = 301
    OUTCOME_UNKNOWN = 302
    UNSUPPORTED_SERVER = 303
    SCHEMA_OUTDATED = 304
    PANIC = 900

    @classmethod
    def of(cls, code: int) -> Union["ErrorCode", int]:
        """The member for ``code``, or ``code`` itself when a newer library sends a number this
        binding does not know (the error must still be raised, not replaced by a ValueError)."""
        try:
            return cls(code)
        except ValueError:
            return code


#: The name this binding had before :class:`ErrorCode`; an ``IntEnum`` member equals its number,
#: so code written against the plain ``int`` attributes runs unchanged.
Code = ErrorCode


_BY_CODE = {
    Code.NULL_PARAMETER: InvalidArgumentError,
    Code.INVALID_ARGUMENT: InvalidArgumentError,
    Code.PAYLOAD_TOO_LARGE: InvalidArgumentError,
    Code.CONFIG: ConfigError,
    Code.NOT_FOUND: NotFoundError,
    Code.TYPE_INACTIVE: TypeInactiveError,
    Code.INVALID_SCHEMA: InvalidSchemaError,
    Code.VALIDATION_FAILED: ValidationError,
    Code.LEASE_LOST: LeaseLostError,
    Code.CONFLICT: ConflictError,
    Code.CONNECTION: ConnectionFailedError,
    Code.DATABASE: DatabaseError,
    Code.OUTCOME_UNKNOWN: OutcomeUnknownError,
    Code.UNSUPPORTED_SERVER: UnsupportedServerError,
    Code.SCHEMA_OUTDATED: SchemaOutdatedError,
    Code.PANIC: InternalError,
}


def error_for(code: int, message: str, details: Optional[Dict[str, Any]]) -> TaskManagerError:
    return _BY_CODE.get(code, TaskManagerError)(code, message, details)
