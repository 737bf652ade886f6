"""The ctypes declarations (pipemsg/_lib.py) against the C headers: the layout program
(tests/CMakeLists.txt builds it from layout.c, PM_LAYOUT names it) prints what the compiler
gives. A pm_client_config that grew in C without the binding would be read past its end."""

import ctypes
import json
import os
import subprocess

import pytest

from pipemsg import _lib


def c_layout():
    prog = os.environ.get("PM_LAYOUT")
    if not prog:
        pytest.skip("PM_LAYOUT is not set: run through CTest (make check), which builds it")
    return json.loads(subprocess.run([prog], check=True, capture_output=True).stdout)


def test_layout_matches_c():
    c = c_layout()
    structs = {"pm_result": _lib.pm_result, "pm_client_config": _lib.pm_client_config,
               "pm_client_event": _lib.pm_client_event}
    # Every field the binding declares is checked, and every field C has in the structures
    # passed whole (pm_client_event is only read through, up to data_json).
    declared = set()
    for sname, cls in structs.items():
        for fname, _ in cls._fields_:
            key = f"{sname}.{fname}"
            declared.add(key)
            assert key in c, f"{key}: declared in _lib.py, unknown to layout.c"
            field = getattr(cls, fname)
            assert [field.offset, field.size] == c[key], f"{key}: offset and size differ from C"
    for key in c:
        if "." in key:
            assert key in declared, f"{key}: in C, missing from _lib.py"
    assert ctypes.sizeof(_lib.pm_result) == c["sizeof pm_result"]
    assert ctypes.sizeof(_lib.pm_client_config) == c["sizeof pm_client_config"], \
        "pm_client_config changed in C: update _lib.py and layout.c"
    constants = [k for k in c if k.startswith("PM_")]
    assert len(constants) >= 10
    for name in constants:
        assert getattr(_lib, name) == c[name], f"{name}: {getattr(_lib, name)} in _lib.py, " \
            f"{c[name]} in C"


def test_soname():
    want = os.environ.get("PM_SONAME")
    if not want:
        pytest.skip("PM_SONAME is not set: run through CTest (make check)")
    assert _lib.SONAME == want, "PM_SOVERSION changed: update SONAME in _lib.py"
