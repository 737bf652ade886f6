"""pipemsg for Python: drives pipemsgd through libpipemsg (ctypes), with the typed contract.

    import pipemsg
    with pipemsg.Client() as c:
        print(c.get_state().state)          # "Disconnected"
        c.start_vpn(location="de")
        for ev in c.events():
            print(ev.id, ev.type, ev.data)

The library is found through $PIPEMSG_LIBRARY, else the build tree this package sits in
(build/lib), else the system's libpipemsg.so.0. bindings/python/README.md has the rest.
"""

from ._client import AsyncEventStream, Client, Event, EventStream
from . import _contract
from ._contract import *  # noqa: F401,F403 (the records: GetStateAnswer, StateChanged, ...)
from ._errors import (BadRequest, ConnectionTimeout, Error, InvalidArgument,
                      ServiceNotInitialized, Timeout, TooManyRequests, TransportError,
                      TransportNotAuthorized, error_class, known_results)
from ._record import Record

__all__ = [
    "AsyncEventStream", "BadRequest", "Client", "ConnectionTimeout", "Error", "Event",
    "EventStream", "InvalidArgument", "Record", "ServiceNotInitialized", "Timeout",
    "TooManyRequests", "TransportError", "TransportNotAuthorized", "error_class", "known_results",
] + [n for n in _contract.__all__ if n != "Commands"]

# Tracebacks say pipemsg.BadRequest, not the private module. (Only the exceptions: the
# records' annotations are resolved in their own module, typing.get_type_hints.)
for _name, _obj in list(globals().items()):
    if isinstance(_obj, type) and issubclass(_obj, Error):
        _obj.__module__ = "pipemsg"
del _name, _obj
