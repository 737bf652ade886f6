"""pipemsg.Error and one subclass per result a call can come to but Ok.

The result "Error" (the command failed) is pipemsg.Error itself; a result this build does not
know raises pipemsg.Error with its name in .result."""

from typing import Dict, Type


class Error(Exception):
    """A call came to a result other than Ok.

    Attributes:
        result: the result's name as on the wire ("TooManyRequests", "Error", ...), or the
            client-side one ("ConnectionTimeout", ...).
        message: the service's Message, or why the client gave up ("" when none).
        from_service: True when the service answered, False for a client-side result.
    """

    def __init__(self, result: str, message: str = "", from_service: bool = True) -> None:
        super().__init__(f"{result}: {message}" if message else result)
        self.result = result
        self.message = message
        self.from_service = from_service


# The service's results (protocol section 3.2).
class BadRequest(Error):
    """The service refused the request as malformed."""


class TooManyRequests(Error):
    """The service is busy: try again later."""


class ServiceNotInitialized(Error):
    """The service is starting."""


# The results the client decides without an answer.
class ConnectionTimeout(Error):
    """No service accepted the connection in time."""


class Timeout(Error):
    """Connected, but no answer in time."""


class TransportError(Error):
    """The connection failed, or the answer was malformed."""


class TransportNotAuthorized(Error):
    """The pipe's owner is not the expected one (nothing was sent), or the service refused us."""


class InvalidArgument(Error):
    """The call itself was wrong (nothing was sent)."""


_CLASSES: Dict[str, Type[Error]] = {
    cls.__name__: cls
    for cls in (BadRequest, TooManyRequests, ServiceNotInitialized, ConnectionTimeout, Timeout,
                TransportError, TransportNotAuthorized, InvalidArgument)
}
_CLASSES["Error"] = Error


def error_class(result: str) -> Type[Error]:
    """The exception class of a result name: its subclass, else Error."""
    return _CLASSES.get(result, Error)


def known_results() -> Dict[str, Type[Error]]:
    """Every result name with a class of its own ("Error" included)."""
    return dict(_CLASSES)
