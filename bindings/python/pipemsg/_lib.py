"""libpipemsg through ctypes: where it is found, and the parts of include/pipemsg/client.h the
binding uses. The structures mirror the C ones field for field; the test test_layout compares
their sizes and offsets with what the C compiler gives, so they cannot drift unseen."""

import ctypes
import os
from pathlib import Path

# The shared library's SONAME (PM_SOVERSION in CMakeLists.txt): the ABI these declarations are
# written for.
SONAME = "libpipemsg.so.0"


def _find() -> str:
    """PIPEMSG_LIBRARY when set; else the build tree this package sits in (build/lib, when
    bindings/python is imported from a source checkout that was built); else the library of
    the install this package came with (_installed.py, written by cmake --install); else the
    system's library by its SONAME (the dynamic loader's search path)."""
    given = os.environ.get("PIPEMSG_LIBRARY")
    if given:
        return given
    here = Path(__file__).resolve().parent
    built = here.parent.parent.parent / "build" / "lib" / SONAME
    if here.parent.name == "python" and here.parent.parent.name == "bindings" and built.exists():
        return str(built)
    try:
        from ._installed import LIBRARY  # type: ignore[import-not-found]
    except ImportError:
        return SONAME
    return LIBRARY if Path(LIBRARY).exists() else SONAME


path = _find()
try:
    lib = ctypes.CDLL(path)
except OSError as e:
    raise ImportError(f"pipemsg: cannot load libpipemsg ({path}): {e}; set PIPEMSG_LIBRARY to "
                      "its path") from None

PM_RESULT_NAME_MAX = 64
PM_RESULT_MESSAGE_MAX = 512

PM_RC_OK = 0
PM_EINVAL = -1
PM_ENOMEM = -2
PM_ENAMETOOLONG = -16
PM_EPIPENAME = -23
# What pm_client_open and pm_client_call_async answer for an argument they refuse.
ARGUMENT_ERRORS = (PM_EINVAL, PM_ENAMETOOLONG, PM_EPIPENAME)
PM_PIPE_PATH_MAX = 107
PM_PIPE_COMMAND = 0
PM_PIPE_EVENT = 1
PM_CLIENT_DRIVE_THREAD = 0
PM_CLIENT_CONNECTED = 0
PM_CLIENT_START_RESUME = 0
PM_CLIENT_START_NOW = 1


class pm_result(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_int),
        ("from_service", ctypes.c_bool),
        ("error", ctypes.c_int),
        ("name", ctypes.c_char * PM_RESULT_NAME_MAX),
        ("message", ctypes.c_char * PM_RESULT_MESSAGE_MAX),
    ]


class pm_client_event(ctypes.Structure):
    """The head of pm_client_event: the fields every event carries (the typed union that
    follows is not read: the binding decodes data_json with the contract itself)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("type_name", ctypes.c_char_p),
        ("id", ctypes.c_int64),
        ("epoch", ctypes.c_int64),
        ("time", ctypes.c_char_p),
        ("data_json", ctypes.c_char_p),
    ]


event_cb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(pm_client_event),
                            ctypes.c_void_p)
connection_cb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                 ctypes.c_void_p)
call_cb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(pm_result), ctypes.c_char_p,
                           ctypes.c_void_p)


class pm_client_config(ctypes.Structure):
    _fields_ = [
        ("command_pipe", ctypes.c_char_p),
        ("event_pipe", ctypes.c_char_p),
        ("connect_timeout_ms", ctypes.c_uint32),
        ("response_timeout_ms", ctypes.c_uint32),
        ("handshake_timeout_ms", ctypes.c_uint32),
        ("reconnect_min_ms", ctypes.c_uint32),
        ("reconnect_max_ms", ctypes.c_uint32),
        ("expect_owner", ctypes.c_char_p),
        ("drive", ctypes.c_int),
        ("on_event", event_cb),
        ("on_connection", connection_cb),
        ("confirm_later", ctypes.c_bool),
        ("observe", ctypes.c_bool),
        ("start", ctypes.c_int),
        ("resume_epoch", ctypes.c_int64),
        ("resume_last_id", ctypes.c_int64),
        ("client_name", ctypes.c_char_p),
        ("data", ctypes.c_void_p),
    ]


lib.pm_client_open.argtypes = [ctypes.POINTER(pm_client_config), ctypes.POINTER(ctypes.c_void_p)]
lib.pm_client_open.restype = ctypes.c_int
lib.pm_client_close.argtypes = [ctypes.c_void_p]
lib.pm_client_close.restype = None
lib.pm_client_call.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.POINTER(ctypes.c_void_p)]
lib.pm_client_call.restype = pm_result
lib.pm_client_call_async.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, call_cb,
                                     ctypes.c_void_p]
lib.pm_client_call_async.restype = ctypes.c_int
lib.pm_client_call_cancel.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
lib.pm_client_call_cancel.restype = ctypes.c_int
lib.pm_client_free.argtypes = [ctypes.c_void_p]
lib.pm_client_free.restype = None
lib.pm_client_confirm.argtypes = [ctypes.c_void_p, ctypes.c_int64]
lib.pm_client_confirm.restype = ctypes.c_int
lib.pm_client_confirm_epoch.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
lib.pm_client_confirm_epoch.restype = ctypes.c_int
lib.pm_client_cursor.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64),
                                 ctypes.POINTER(ctypes.c_int64)]
lib.pm_client_cursor.restype = None
lib.pm_pipe_default.argtypes = [ctypes.c_int]
lib.pm_pipe_default.restype = ctypes.c_char_p
lib.pm_pipe_path.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
lib.pm_pipe_path.restype = ctypes.c_int
lib.pm_strerror.argtypes = [ctypes.c_int]
lib.pm_strerror.restype = ctypes.c_char_p


def strerror(code: int) -> str:
    return (lib.pm_strerror(code) or b"").decode("utf-8", "replace")
