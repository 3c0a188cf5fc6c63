"""The one module that talks to libtaskmanager through ctypes.

Every symbol's argtypes and restype are declared here. Strings the library hands over are
received as ``c_void_p`` (never ``c_char_p``, which would lose the pointer and leak it),
copied with ``string_at`` and freed with ``tm_string_free``; errors are copied into an
exception and freed with ``tm_error_free``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
from ctypes import POINTER, c_bool, c_char_p, c_int, c_int64, c_void_p
from pathlib import Path
from typing import Any, List, Optional

from ._errors import Code, LibraryNotFoundError, error_for

_HERE = Path(__file__).resolve().parent


def _loader_dirs() -> List[str]:
    """Directories the system loader searches, where `scripts/install` puts the library."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    machine = platform.machine()
    dirs += ["/usr/local/lib", "/usr/local/lib64", f"/usr/lib/{machine}-linux-gnu", "/usr/lib64", "/usr/lib"]
    return dirs


def candidate_paths() -> List[str]:
    """Where the library is looked for, in order: TASKMANAGER_LIB; inside the package (where
    `pip install` puts it); a build tree next to the package; the system loader's paths."""
    paths = []
    override = os.environ.get("TASKMANAGER_LIB")
    if override:
        paths.append(override)
    packaged = sorted(str(p) for p in _HERE.glob("libtaskmanager*.so"))
    paths += packaged or [str(_HERE / "libtaskmanager.so")]
    repo = _HERE.parent.parent
    paths.append(str(repo / "target" / "release" / "libtaskmanager.so"))
    paths.append(str(repo / "target" / "debug" / "libtaskmanager.so"))
    paths += [os.path.join(d, "libtaskmanager.so") for d in _loader_dirs()]
    found = ctypes.util.find_library("taskmanager")
    if found:
        paths.append(found if os.path.isabs(found) else _resolve_soname(found))
    return paths


def _resolve_soname(name: str) -> str:
    """A bare name from the loader cache, made a path where one of its directories holds it."""
    for directory in _loader_dirs():
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return name


def _load() -> ctypes.CDLL:
    tried = candidate_paths()
    for path in tried:
        # A bare name (from the loader cache) is handed to the loader as is.
        bare = os.sep not in path
        if os.path.isfile(path) or bare:
            try:
                return ctypes.CDLL(path if bare else os.path.abspath(path))
            except OSError as e:
                raise LibraryNotFoundError(Code.CONFIG, f"cannot load {path}: {e}") from e
    raise LibraryNotFoundError(
        Code.CONFIG,
        "libtaskmanager.so was not found. Tried:\n  " + "\n  ".join(tried)
        + "\nInstall the package with `pip install ./python` (it builds the library into the package), "
        "install the library with `scripts/install /usr/local`, or set TASKMANAGER_LIB to its absolute path.",
    )


lib = _load()

_err = c_void_p  # tm_error *
_client = c_void_p  # const tm_client *
_out = POINTER(c_void_p)  # char **out_json

# name: (argtypes, restype); every fallible call returns tm_error *.
_SIGNATURES = {
    "tm_version": ([], c_char_p),  # static string, not owned: c_char_p is fine
    "tm_client_open": ([c_char_p, POINTER(c_void_p)], _err),
    "tm_client_free": ([c_void_p], None),
    "tm_migrate": ([_client], _err),
    "tm_migrate_to": ([_client, ctypes.c_int64], _err),
    "tm_type_register": ([_client, c_char_p, _out], _err),
    "tm_type_get": ([_client, c_char_p, _out], _err),
    "tm_type_list": ([_client, _out], _err),
    "tm_type_set_active": ([_client, c_char_p, c_bool, _out], _err),
    "tm_type_pause": ([_client, c_char_p, c_char_p, _out], _err),
    "tm_type_resume": ([_client, c_char_p, _out], _err),
    "tm_type_set_limits": ([_client, c_char_p, c_char_p, _out], _err),
    "tm_task_enqueue": ([_client, c_char_p, c_char_p, c_char_p, _out], _err),
    "tm_task_enqueue_batch": ([_client, c_char_p, _out], _err),
    "tm_task_enqueue_statement": ([_client, c_char_p, c_char_p, c_char_p, _out], _err),
    "tm_task_claim": ([_client, c_char_p, c_char_p, _out], _err),
    "tm_task_heartbeat": ([_client, c_int64, c_char_p, c_char_p, _out], _err),
    "tm_task_heartbeat_as_worker": ([_client, c_int64, c_char_p, c_char_p, _out], _err),
    "tm_task_complete": ([_client, c_int64, c_char_p, c_char_p, _out], _err),
    "tm_task_complete_as_worker": ([_client, c_int64, c_char_p, c_char_p, _out], _err),
    "tm_task_complete_and_claim": ([_client, c_int64, c_char_p, c_char_p, c_char_p, c_char_p, _out], _err),
    "tm_task_complete_batch": ([_client, c_char_p, _out], _err),
    "tm_task_fail": ([_client, c_int64, c_char_p, c_char_p, c_char_p, _out], _err),
    "tm_task_fail_as_worker": ([_client, c_int64, c_char_p, c_char_p, c_char_p, _out], _err),
    "tm_task_release": ([_client, c_int64, c_char_p, _out], _err),
    "tm_task_cancel": ([_client, c_int64, c_char_p, _out], _err),
    "tm_task_retry": ([_client, c_int64, _out], _err),
    "tm_tasks_cancel_where": ([_client, c_char_p, c_char_p, _out], _err),
    "tm_tasks_retry_where": ([_client, c_char_p, c_char_p, _out], _err),
    "tm_tasks_recover_expired": ([_client, _out], _err),
    "tm_task_get": ([_client, c_int64, _out], _err),
    "tm_task_list": ([_client, c_char_p, _out], _err),
    "tm_task_history": ([_client, c_int64, _out], _err),
    "tm_stats": ([_client, _out], _err),
    "tm_stats_prometheus": ([_client, _out], _err),
    "tm_tasks_prune": ([_client, c_char_p, _out], _err),
    "tm_schedule_put": ([_client, c_char_p, _out], _err),
    "tm_schedule_get": ([_client, c_char_p, _out], _err),
    "tm_schedule_list": ([_client, _out], _err),
    "tm_schedule_delete": ([_client, c_char_p, _out], _err),
    "tm_schedules_tick": ([_client, _out], _err),
    "tm_string_free": ([c_void_p], None),
    "tm_error_code": ([_err], c_int),
    "tm_error_message": ([_err], c_void_p),  # borrowed from the error: copied before freeing
    "tm_error_details": ([_err], c_void_p),
    "tm_error_free": ([_err], None),
}

for _name, (_args, _res) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.argtypes = _args
    _fn.restype = _res


def check(error: Optional[int]) -> None:
    """Raises the matching exception for a non-NULL ``tm_error *``, after freeing it."""
    if not error:
        return
    try:
        code = lib.tm_error_code(error)
        message = ctypes.string_at(lib.tm_error_message(error)).decode("utf-8", "replace")
        details_ptr = lib.tm_error_details(error)
        details = json.loads(ctypes.string_at(details_ptr)) if details_ptr else None
    finally:
        lib.tm_error_free(error)
    raise error_for(code, message, details)


def text(value: Optional[str], name: str) -> Optional[bytes]:
    """Encodes a string argument; a NUL inside would silently cut it short in C."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise error_for(Code.INVALID_ARGUMENT, f"{name} contains a NUL character", None)
    return value.encode("utf-8", "surrogatepass")


def encode_json(value: Any, name: str) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError) as e:
        raise error_for(Code.INVALID_ARGUMENT, f"{name} cannot be encoded as JSON: {e}", None) from e


def call_json(function: str, *args: Any) -> Any:
    """Calls ``tm_<function>(..., &out)``; raises on error; returns the decoded output."""
    raw = call_text(function, *args)
    return None if raw is None else json.loads(raw)


def call_text(function: str, *args: Any) -> Optional[bytes]:
    """Calls ``tm_<function>(..., &out)``; raises on error; returns the output as bytes."""
    out = c_void_p()
    try:
        error = getattr(lib, function)(*args, ctypes.byref(out))
    except ctypes.ArgumentError as e:
        raise error_for(Code.INVALID_ARGUMENT, f"{function}: {e}", None) from e
    check(error)
    if not out.value:
        return None
    try:
        return ctypes.string_at(out.value)
    finally:
        lib.tm_string_free(out)


def version() -> str:
    return lib.tm_version().decode()


__all__ = ["lib", "check", "call_json", "call_text", "text", "encode_json", "version", "candidate_paths"]
