"""The binding against include/taskmanager.h: the ctypes signature table and the error codes
must match the header, so a changed export cannot pass silently (ctypes would convert the
arguments as the table says, whatever the library now expects)."""

import ctypes
import re
from ctypes import POINTER, c_bool, c_char_p, c_int, c_int32, c_int64, c_uint32, c_uint64, c_void_p
from pathlib import Path

import pytest

import taskmanager
from taskmanager import ErrorCode, _ffi

HEADER = Path(__file__).resolve().parents[2] / "include" / "taskmanager.h"

# C type as written in the header (spaces normalised, "*" attached) -> the ctypes types the
# table may use for it. Where two are allowed, the reason is in the comment.
ARG_TYPES = {
    "const char*": {c_char_p},  # a string handed in: ctypes encodes and NUL-terminates it
    "char*": {c_void_p},  # tm_string_free: the library's own pointer, handed back untouched
    "char**": {POINTER(c_void_p)},  # out_json: received as void* so it can be freed
    "int64_t": {c_int64},
    "int32_t": {c_int32},
    "uint32_t": {c_uint32},
    "uint64_t": {c_uint64},
    "bool": {c_bool},
    "const tm_client*": {c_void_p},
    "tm_client*": {c_void_p},
    "tm_client**": {POINTER(c_void_p)},
    "const tm_error*": {c_void_p},
    "tm_error*": {c_void_p},
}
RETURN_TYPES = {
    "void": {None},
    "tm_error*": {c_void_p},
    "tm_code": {c_int},  # a C enum is an int
    # Borrowed or static text: c_char_p copies it at once, c_void_p keeps the pointer to copy
    # by hand; neither frees it, and both are right for a pointer the caller must not free.
    "const char*": {c_char_p, c_void_p},
}

PROTOTYPE = re.compile(r"^([A-Za-z_][\w \t\*]*?)\b(tm_\w+)\s*\(([^;{]*?)\)\s*;", re.M | re.S)


def strip_comments(text):
    return re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))


def normalise(c_type):
    c_type = re.sub(r"\s*\*\s*", "*", " ".join(c_type.split()))
    return c_type.strip()


def parse_prototypes(header_text):
    """{name: (return type, [argument types])} for every function the header declares."""
    out = {}
    for ret, name, args in PROTOTYPE.findall(strip_comments(header_text)):
        params = [] if args.strip() in ("", "void") else [a for a in args.split(",")]
        types = []
        for param in params:
            param = " ".join(param.split())
            # Drop the parameter's name: the last identifier, unless the type is all there is.
            match = re.match(r"^(.*?[\s\*])([A-Za-z_]\w*)$", param)
            types.append(normalise(match.group(1) if match else param))
        out[name] = (normalise(ret), types)
    return out


# ctypes names fixed-width types after the C type they alias (c_int64 is c_long on Linux):
# the message uses the width the header spells.
_NAMES = {c_int64: "c_int64", c_int32: "c_int32", c_uint64: "c_uint64", c_uint32: "c_uint32"}


def type_name(t):
    return "None" if t is None else _NAMES.get(t, t.__name__)


def signature_mismatches(prototypes, table):
    """Every way ``table`` ({name: (argtypes, restype)}) disagrees with the header."""
    problems = []
    for name in sorted(set(prototypes) - set(table)):
        problems.append(f"{name}: exported by the header, missing from the ctypes table")
    for name in sorted(set(table) - set(prototypes)):
        problems.append(f"{name}: in the ctypes table, not in the header")
    for name in sorted(set(prototypes) & set(table)):
        ret, args = prototypes[name]
        argtypes, restype = table[name]
        if len(args) != len(argtypes):
            problems.append(f"{name}: the header has {len(args)} parameters ({', '.join(args)}), the table {len(argtypes)}")
            continue
        for i, (c_type, py_type) in enumerate(zip(args, argtypes)):
            allowed = ARG_TYPES.get(c_type)
            if allowed is None:
                problems.append(f"{name}: parameter {i} has C type {c_type!r}, which this test cannot map yet")
            elif py_type not in allowed:
                problems.append(f"{name}: parameter {i} is {c_type!r}, the table says {type_name(py_type)}"
                                f" (expected {' or '.join(sorted(type_name(a) for a in allowed))})")
        allowed = RETURN_TYPES.get(ret)
        if allowed is None:
            problems.append(f"{name}: returns C type {ret!r}, which this test cannot map yet")
        elif restype not in allowed:
            problems.append(f"{name}: returns {ret!r}, the table says {type_name(restype)}")
    return problems


@pytest.fixture(scope="module")
def prototypes():
    found = parse_prototypes(HEADER.read_text())
    # A parser that found nothing would make every comparison pass.
    assert len(found) >= 30 and "tm_task_complete_and_claim" in found, sorted(found)
    return found


def test_the_parser_reads_a_prototype_over_several_lines(prototypes):
    assert prototypes["tm_task_complete_and_claim"] == (
        "tm_error*", ["const tm_client*", "int64_t", "const char*", "const char*", "const char*", "const char*", "char**"])
    assert prototypes["tm_version"] == ("const char*", [])
    assert prototypes["tm_type_set_active"][1][2] == "bool"


def test_every_export_has_a_matching_ctypes_signature(prototypes):
    problems = signature_mismatches(prototypes, _ffi._SIGNATURES)
    assert not problems, "\n".join(problems)


def test_the_loaded_functions_carry_the_table(prototypes):
    for name, (argtypes, restype) in _ffi._SIGNATURES.items():
        fn = getattr(_ffi.lib, name)
        assert list(fn.argtypes) == list(argtypes) and fn.restype is restype, name


def test_the_check_catches_a_changed_table(prototypes):
    """The comparison itself can fail: each kind of drift is reported."""
    table = dict(_ffi._SIGNATURES)

    removed = {k: v for k, v in table.items() if k != "tm_task_get"}
    assert signature_mismatches(prototypes, removed) == [
        "tm_task_get: exported by the header, missing from the ctypes table"]

    args, res = table["tm_task_heartbeat"]
    changed = dict(table, tm_task_heartbeat=([args[0], ctypes.c_double] + list(args[2:]), res))
    [problem] = signature_mismatches(prototypes, changed)
    assert problem.startswith("tm_task_heartbeat: parameter 1 is 'int64_t', the table says c_double"), problem

    shorter = dict(table, tm_task_claim=(table["tm_task_claim"][0][:-1], table["tm_task_claim"][1]))
    assert len(signature_mismatches(prototypes, shorter)) == 1

    wrong_return = dict(table, tm_migrate=(table["tm_migrate"][0], None))
    assert signature_mismatches(prototypes, wrong_return) == ["tm_migrate: returns 'tm_error*', the table says None"]


def test_the_check_catches_a_new_or_changed_export(prototypes):
    added = dict(prototypes, tm_task_touch=("tm_error*", ["const tm_client*", "int64_t"]))
    assert signature_mismatches(added, _ffi._SIGNATURES) == [
        "tm_task_touch: exported by the header, missing from the ctypes table"]
    widened = dict(prototypes, tm_task_get=("tm_error*", ["const tm_client*", "uint64_t", "char**"]))
    assert len(signature_mismatches(widened, _ffi._SIGNATURES)) == 1


def header_codes(text):
    body = re.search(r"typedef enum \{(.*?)\} tm_code;", strip_comments(text), re.S)
    assert body, "no tm_code enum in the header"
    return {name: int(value) for name, value in re.findall(r"\bTM_(\w+)\s*=\s*(\d+)", body.group(1))}


def test_error_codes_match_the_header():
    codes = header_codes(HEADER.read_text())
    assert len(codes) >= 17
    assert {m.name: m.value for m in ErrorCode} == codes
    older = {k: v for k, v in vars(taskmanager.Code).items() if k.isupper()}
    assert older == codes, "Code, the older table of plain ints, has the same numbers"


def test_each_error_code_raises_its_own_exception_class():
    from taskmanager._errors import error_for

    for code in ErrorCode:
        if code is ErrorCode.OK:
            continue
        e = error_for(int(code), f"message for {code.name}", None)
        assert type(e) is not taskmanager.TaskManagerError, f"{code.name} has no exception class of its own"
        assert e.code is code and e.code == int(code), "the code is the enum member, equal to its number"
        assert str(e) == f"message for {code.name} (code {int(code)})"
    unknown = error_for(777, "from a newer library", None)
    assert type(unknown) is taskmanager.TaskManagerError and unknown.code == 777


def test_the_package_ships_its_type_marker():
    package = Path(taskmanager.__file__).parent
    assert (package / "py.typed").is_file()
    pyproject = (package.parent / "pyproject.toml").read_text()
    assert re.search(r'^\[tool\.setuptools\.package-data\]\s*\n(#[^\n]*\n)*taskmanager = \[[^\]]*"py\.typed"', pyproject, re.M), \
        "pyproject.toml does not put py.typed into the package"
    assert '"taskmanager.aio"' in pyproject, "pyproject.toml does not ship the aio package"
