"""pipemsg.Client: commands (blocking and asyncio) and events over libpipemsg's pm_client."""

import asyncio
import ctypes
import itertools
import json
import threading
import weakref
from collections import deque
from typing import Any, Callable, Deque, Dict, Mapping, Optional, Tuple, Type

from . import _lib
from ._contract import EVENTS, Commands
from ._errors import Error, InvalidArgument, TransportError, error_class
from ._record import DataMismatch, Record, decode_answer, params_of

_lib_ = _lib.lib

# Events the binding holds for an events() loop that has not taken them yet, by count and by
# the bytes of their Data. An observer gets every event without confirming, so the service
# would otherwise fill this without bound; past either limit the library's event thread waits,
# the service's socket fills, and the service cuts a slow observer off (TooSlow) as it would any
# other. The bytes match what the service lets an observer leave unread
# (PM_EVENT_OBSERVER_MAX_UNSENT_DEFAULT); one event larger than that is still taken alone.
EVENTS_BUFFERED_MAX = 1024
EVENTS_BUFFERED_BYTES_MAX = 4 * 1024 * 1024

# Every event session whose library client may still call back into Python: its ctypes
# callbacks must outlive the C client, whatever happens to the objects the application holds
# (an exception between making a session and the stream that closes it, a finalizer running
# late). A session enters before pm_client_open and leaves once pm_client_close has returned.
_ATTACHED: "set[_SessionCore]" = set()
_ATTACHED_LOCK = threading.Lock()
# The session whose callback this thread is running (the library's thread): a garbage
# collection there may close that very session.
_IN_CALLBACK = threading.local()


def _text(b: Optional[bytes]) -> str:
    return b.decode("utf-8", "replace") if b else ""


def _data_of(command: str, data_json: Optional[bytes]) -> Dict[str, Any]:
    """An Ok answer's Data as a dict ({} when it had none)."""
    data = json.loads(data_json) if data_json else {}
    if not isinstance(data, dict):
        raise TransportError("TransportError", f"{command}: the answer's Data is not an object",
                             from_service=False)
    return data


def _c_string(value: Optional[str], what: str) -> Optional[bytes]:
    """value as the NUL-terminated UTF-8 the library takes. A NUL inside would cut it short
    there (a command "GetState\\0x" would run GetState), and a lone surrogate is not text:
    both are refused, as InvalidArgument, before anything is sent."""
    if value is None:
        return None
    if "\0" in value:
        raise InvalidArgument("InvalidArgument", f"{what} contains a NUL character",
                              from_service=False)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument("InvalidArgument", f"{what} is not Unicode text: {e.reason}",
                              from_service=False) from None


def _params_body(command: str, params: Mapping[str, Any]) -> Optional[bytes]:
    """Params as JSON text for the library. What JSON cannot carry is refused here, with the
    reason, as InvalidArgument: NaN and infinities (Python would write NaN, which is not
    JSON), lone surrogates, nesting deeper than Python can encode. Integers beyond 64 bits and
    NUL characters are refused by the library, which names them."""
    if not params:
        return None
    try:
        text = json.dumps(params, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError) as e:
        raise InvalidArgument("InvalidArgument", f"{command}: params cannot be sent as JSON: {e}",
                              from_service=False) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument("InvalidArgument", f"{command}: params are not Unicode text: "
                              f"{e.reason}", from_service=False) from None


def _failed(rc: int, what: str) -> Exception:
    """A library call that returned a PM_E* code: InvalidArgument for an argument it refused
    (a pipe name, expect_owner), MemoryError, else TransportError (a thread not started)."""
    if rc == _lib.PM_ENOMEM:
        return MemoryError(f"{what}: {_lib.strerror(rc)}")
    cls = InvalidArgument if rc in _lib.ARGUMENT_ERRORS else TransportError
    return cls(cls.__name__, f"{what}: {_lib.strerror(rc)}", from_service=False)


def _millis(value: int, what: str) -> int:
    """A timeout for the library's uint32_t: ctypes would silently keep its low 32 bits (-1
    becoming 49 days, 2**32 the default)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int (milliseconds), not {value!r}")
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{what} must be 0 (the default) to 2**32-1 milliseconds, not {value}")
    return value


def _open_failed(rc: int, config: Dict[str, Any]) -> Exception:
    """pm_client_open's refusal, naming the setting it refused: the library answers one code
    for all of them, so the pipe names are checked again here, one at a time."""
    if rc not in _lib.ARGUMENT_ERRORS:
        return _failed(rc, "cannot open the client")
    buf = ctypes.create_string_buffer(_lib.PM_PIPE_PATH_MAX + 1)
    for what, kind in (("command_pipe", _lib.PM_PIPE_COMMAND), ("event_pipe", _lib.PM_PIPE_EVENT)):
        name = config[what]
        if name is None:
            name = _lib_.pm_pipe_default(kind)
            what = f"{what} (from ${'PIPEMSG_' + what.upper()} or the default)"
        rc_name = _lib_.pm_pipe_path(name, buf, len(buf))
        if rc_name < 0:
            shown = _text(name)
            if len(shown) > 60:
                shown = repr(shown[:60]) + f"... ({len(name)} bytes)"
            else:
                shown = repr(shown)
            return _failed(rc_name, f"{what} {shown}")
    owner = config["expect_owner"]
    return _failed(rc, f"expect_owner {_text(owner)!r} (no such user, uid or account)")


def _raise_for(r: "_lib.pm_result") -> None:
    name = _text(r.name)
    raise error_class(name)(name, _text(r.message), bool(r.from_service))


class Event:
    """One event from the service.

    Attributes:
        id: the event's id (increasing within an epoch).
        type: the event type ("StateChanged", ...).
        data: the event's Data as a dict ({} when it had none).
        typed: the Data as the contract's record of the type (pipemsg.StateChanged, ...), or
            None for a type the contract does not declare or Data that does not match it.
        epoch: the service's epoch of the id.
        time: when it was published (RFC 3339), or None.
    """

    __slots__ = ("id", "type", "data", "typed", "epoch", "time", "_session", "_confirmed")

    def __init__(self, ev: "_lib.pm_client_event", session: "Optional[_SessionCore]") -> None:
        self.id: int = ev.id
        self.type: str = _text(ev.type_name)
        self.data: Dict[str, Any] = json.loads(ev.data_json) if ev.data_json else {}
        self.epoch: int = ev.epoch
        self.time: Optional[str] = _text(ev.time) or None
        record = EVENTS.get(self.type)
        self.typed: Optional[Record] = None
        if record is not None:
            try:
                self.typed = record._decode(self.data, self.type)
            except DataMismatch:
                pass
        self._session = session
        self._confirmed = session is None

    def confirm(self) -> None:
        """Confirms the event now (the loop otherwise does when it comes back for the next one):
        before leaving the loop with break, so that the event is not sent again."""
        if not self._confirmed and self._session is not None:
            self._confirmed = True
            self._session.confirm(self.id, self.epoch)

    def __repr__(self) -> str:
        return f"Event(id={self.id}, type={self.type!r}, data={self.data!r})"


class _SessionCore:
    """One pm_client attached to the event pipe, and the events it has handed over. Its
    callbacks reach only this; while attached it is kept in _ATTACHED, so the library never
    calls a freed callback. What the application holds is an _EventSession, whose finalizer
    closes this."""

    def __init__(self, config: Dict[str, Any], observe: bool, client_name: Optional[str],
                 start: "_Start", wake: Optional[Callable[[], None]]) -> None:
        self.observe = observe
        resume, from_now = start
        # The position the application has reached: the last event it finished with.
        self.cursor: Tuple[int, int] = resume if resume is not None else (0, 0)
        self._buf: Deque[Tuple[Event, int]] = deque()
        self._buf_bytes = 0
        # Entered as itself, whose "with" is C: an exception from a signal handler cannot land
        # between taking it and the block that releases it, as it can in Condition.__enter__
        # (Python code), which would leave it held for good. Reentrant: a garbage collection
        # on a thread holding it may close this session.
        self._mutex = threading.RLock()
        self._cond = threading.Condition(self._mutex)
        self._closed = False
        self._wake = wake
        self._handle_lock = threading.Lock()
        self._closing = False  # a close() has taken the handle (under _handle_lock)
        # The _EventSession's finalizer, detached by an explicit close: left armed, a garbage
        # collection could still run it later, on any thread (the library's included).
        self.finalizer: Optional[weakref.finalize] = None
        self.attached = False
        self._on_event = _lib.event_cb(self._event)
        self._on_connection = _lib.connection_cb(self._connection)
        # The library keeps the pointer for every handshake: the bytes live as long as this.
        self._client_name = _c_string(client_name, "client_name")
        self._cfg = _lib.pm_client_config(**config)
        self._cfg.on_event = self._on_event
        self._cfg.on_connection = self._on_connection
        self._cfg.confirm_later = not observe
        self._cfg.observe = observe
        self._cfg.client_name = self._client_name
        self._cfg.start = _lib.PM_CLIENT_START_NOW if from_now else _lib.PM_CLIENT_START_RESUME
        if resume is not None:
            self._cfg.resume_epoch, self._cfg.resume_last_id = resume
        # The library writes the handle here itself: an exception landing after
        # pm_client_open has returned still leaves it where close() finds it.
        self._cell = ctypes.c_void_p()

    def open(self) -> None:
        with _ATTACHED_LOCK:
            _ATTACHED.add(self)
        rc = _lib_.pm_client_open(ctypes.byref(self._cfg), ctypes.byref(self._cell))
        if rc < 0:
            self.close()
            raise _failed(rc, "cannot attach to the event pipe")

    def _event(self, _client: int, ev: Any, _data: int) -> None:
        _IN_CALLBACK.core = self
        try:
            self._take_event(ev.contents)
        finally:
            _IN_CALLBACK.core = None

    def _take_event(self, c_ev: Any) -> None:
        size = len(c_ev.data_json) if c_ev.data_json else 0
        event = Event(c_ev, None if self.observe else self)
        with self._mutex:
            while self._buf and not self._closed and \
                    (len(self._buf) >= EVENTS_BUFFERED_MAX or
                     self._buf_bytes + size > EVENTS_BUFFERED_BYTES_MAX):
                self._cond.wait()
            if self._closed:
                return  # unconfirmed: the service sends it to the next client
            self._buf.append((event, size))
            self._buf_bytes += size
            self._cond.notify_all()
        if self._wake is not None:
            self._wake()

    def _connection(self, _client: int, state: int, _reason: Optional[bytes], _data: int) -> None:
        _IN_CALLBACK.core = self
        try:
            self._state(state)
        finally:
            _IN_CALLBACK.core = None

    def _state(self, state: int) -> None:
        with self._mutex:
            self.attached = state == _lib.PM_CLIENT_CONNECTED
            self._cond.notify_all()
        if self._wake is not None:
            self._wake()

    def wait_attached(self, timeout: Optional[float]) -> bool:
        with self._mutex:
            return self._cond.wait_for(lambda: self.attached or self._closed, timeout) \
                and not self._closed

    def take(self, block: bool) -> Optional[Event]:
        """The next event; None once closed (or, not blocking, when none is there)."""
        with self._mutex:
            while not self._buf and not self._closed and block:
                self._cond.wait()
            if self._closed or not self._buf:
                return None
            ev, size = self._buf.popleft()
            self._buf_bytes -= size
            self._cond.notify_all()
            return ev

    @property
    def closed(self) -> bool:
        return self._closed

    def confirm(self, event_id: int, epoch: int) -> None:
        with self._handle_lock:
            if epoch != self.cursor[0] or event_id > self.cursor[1]:
                self.cursor = (epoch, event_id)
            if self._cell.value is not None:
                # With its epoch: an event from before a restart without the store, confirmed
                # late, must not confirm the new epoch's event with the same id.
                _lib_.pm_client_confirm_epoch(self._cell.value, epoch, event_id)

    def close(self) -> None:
        finalizer = self.finalizer
        if finalizer is not None:
            finalizer.detach()
        with self._mutex:
            self._closed = True
            self._buf.clear()
            self._buf_bytes = 0
            self._cond.notify_all()
        # The handle is taken under the lock (confirm reads it under the lock too) but closed
        # after releasing it: pm_client_close joins the library's thread, where a garbage
        # collection inside a callback may close this session again; that close must not wait
        # for this one.
        with self._handle_lock:
            handle, self._cell.value = self._cell.value, None
            first, self._closing = not self._closing, True
        if handle is not None:
            # Releases the GIL (ctypes), so an event callback waiting for it finishes first.
            _lib_.pm_client_close(handle)
        if not first:
            # The close that took the handle lets the callbacks go once the library is done.
            return
        # Only now may the callbacks go: the library calls none of them any more. Closed from
        # its own callback, the client is freed once that returns: the entry stays, so that
        # the callback being run is not freed under it.
        if getattr(_IN_CALLBACK, "core", None) is not self:
            with _ATTACHED_LOCK:
                _ATTACHED.discard(self)
        if self._wake is not None:
            self._wake()


class _EventSession:
    """What a stream holds: its _SessionCore, closed when this is closed or collected (an
    exception between making this and the stream leaves it to the garbage collector)."""

    def __init__(self, core: _SessionCore) -> None:
        self.core = core
        # Set before the core opens: from then on, losing this closes it.
        self._finalizer = weakref.finalize(self, core.close)
        core.finalizer = self._finalizer
        core.open()


class EventStream:
    """What Client.events() returns: iterate it (for ev in ...). An event is confirmed when the
    loop comes back for the next one, so an exception in the loop body leaves it unconfirmed and
    the service sends it again on the next attach; leaving the loop (break, an exception, close())
    ends the attachment. Also a context manager."""

    def __init__(self, client: "Client", session: "_EventSession") -> None:
        # The client too: a stream of a client the application does not keep
        # (pipemsg.Client().events()) would be closed with it at once.
        self._client = client
        self._keep = session
        self._session = session.core
        self._last: Optional[Event] = None

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        if self._last is not None:
            self._last.confirm()
            self._last = None
        ev = self._session.take(block=True)
        if ev is None:
            raise StopIteration
        self._last = ev
        return ev

    @property
    def cursor(self) -> Tuple[int, int]:
        """The resume cursor, (epoch, last_id): the service's epoch and the id of the last
        event the loop has finished with (confirmed), else the resume cursor the stream was
        given, else (0, 0). Keep it for events(resume=...)."""
        return self._session.cursor

    def wait_attached(self, timeout: Optional[float] = None) -> bool:
        """Waits until the event pipe's handshake has completed (an observer sees only what is
        published from then on): True, or False when closed or timeout (seconds) passed."""
        return self._session.wait_attached(timeout)

    def close(self) -> None:
        """Detaches; the event in hand, unless confirmed, comes again on the next attach."""
        self._session.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # __init__ may not have run (an exception before it ended): the session's own
        # finalizer closes it then.
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()


class AsyncEventStream:
    """What Client.aevents() returns: async for ev in ...; the same rules as EventStream. Also
    an async context manager."""

    def __init__(self, client: "Client", session: "_EventSession", ready: asyncio.Event) -> None:
        self._client = client  # as EventStream
        self._keep = session
        self._session = session.core
        self._ready = ready
        self._last: Optional[Event] = None

    def __aiter__(self) -> "AsyncEventStream":
        return self

    async def __anext__(self) -> Event:
        if self._last is not None:
            self._last.confirm()
            self._last = None
        while True:
            # Cleared before looking, so an event handed over after the look sets it again.
            self._ready.clear()
            ev = self._session.take(block=False)
            if ev is not None:
                self._last = ev
                return ev
            if self._session.closed:
                raise StopAsyncIteration
            await self._ready.wait()

    @property
    def cursor(self) -> Tuple[int, int]:
        """The resume cursor, as EventStream.cursor."""
        return self._session.cursor

    async def wait_attached(self) -> bool:
        """Waits until the event pipe's handshake has completed: True, or False when closed
        (asyncio.wait_for gives it a timeout)."""
        while True:
            self._ready.clear()
            if self._session.closed:
                return False
            if self._session.attached:
                return True
            await self._ready.wait()

    async def aclose(self) -> None:
        """Detaches, as EventStream.close()."""
        self._session.close()

    async def __aenter__(self) -> "AsyncEventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._session.close()

    def __del__(self) -> None:
        # __init__ may not have run (an exception before it ended): the session's own
        # finalizer closes it then.
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()


class _PendingCalls:
    """The asyncio calls handed to the library, by the token its callback gets back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Dict[int, Tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", str]] = {}
        self._tokens = itertools.count(1)

    def add(self, loop: asyncio.AbstractEventLoop, fut: "asyncio.Future[Any]", command: str
            ) -> int:
        token = next(self._tokens)
        with self._lock:
            self._calls[token] = (loop, fut, command)
        return token

    def has(self, token: int) -> bool:
        with self._lock:
            return token in self._calls

    def pop(self, token: int) -> Optional[Tuple[asyncio.AbstractEventLoop,
                                                "asyncio.Future[Any]", str]]:
        with self._lock:
            return self._calls.pop(token, None)

    def done(self, _client: int, result: Any, data_json: Optional[bytes],
             token: Optional[int]) -> None:
        """The library's callback, on its own thread: hands the outcome to the caller's loop."""
        entry = self.pop(token or 0)
        if entry is None:
            return
        loop, fut, command = entry
        r = result.contents
        outcome: Any
        if r.code == _lib.PM_RC_OK:
            try:
                outcome, settle = _data_of(command, data_json), _settle_result
            except Error as e:
                outcome, settle = e, _settle_error
        else:
            name = _text(r.name)
            outcome = error_class(name)(name, _text(r.message), bool(r.from_service))
            settle = _settle_error
        _to_loop(loop, settle, fut, outcome)

    def cancel_all(self) -> None:
        """After pm_client_close, which drops the calls still pending without their callback."""
        with self._lock:
            calls, self._calls = self._calls, {}
        for loop, fut, _ in calls.values():
            _to_loop(loop, _settle_cancel, fut, None)


def _to_loop(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(settle, *args)
    except RuntimeError:
        pass  # the caller's loop is closed: nobody waits


class Client(Commands):
    """A client of pipemsgd: one method per command (get_state(), start_vpn(location=...), ...,
    each with an asyncio twin: aget_state(), ...), call() for any command, events() and
    aevents() for the event pipe.

    command_pipe and event_pipe default to $PIPEMSG_COMMAND_PIPE / $PIPEMSG_EVENT_PIPE, else
    the standard names. A timeout of 0 is the library's default (docs/api.md). expect_owner:
    who may serve the pipes beside root and our own user ("*": anyone). Usable from several
    threads at once; a context manager, closed by close()."""

    def __init__(self, command_pipe: Optional[str] = None, event_pipe: Optional[str] = None, *,
                 connect_timeout_ms: int = 0, response_timeout_ms: int = 0,
                 handshake_timeout_ms: int = 0, reconnect_min_ms: int = 0,
                 reconnect_max_ms: int = 0, expect_owner: Optional[str] = None) -> None:
        self._config: Dict[str, Any] = {
            "command_pipe": _c_string(command_pipe, "command_pipe"),
            "event_pipe": _c_string(event_pipe, "event_pipe"),
            "connect_timeout_ms": _millis(connect_timeout_ms, "connect_timeout_ms"),
            "response_timeout_ms": _millis(response_timeout_ms, "response_timeout_ms"),
            "handshake_timeout_ms": _millis(handshake_timeout_ms, "handshake_timeout_ms"),
            "reconnect_min_ms": _millis(reconnect_min_ms, "reconnect_min_ms"),
            "reconnect_max_ms": _millis(reconnect_max_ms, "reconnect_max_ms"),
            "expect_owner": _c_string(expect_owner, "expect_owner"),
        }
        self._mutex = threading.RLock()  # as _SessionCore's
        self._lock = threading.Condition(self._mutex)
        self._busy = 0  # calls running on self._handle
        self._handle: Optional[int] = None
        self._sessions: "weakref.WeakSet[_SessionCore]" = weakref.WeakSet()
        # The library's callback reaches the pending calls only, never the client: a client
        # the application drops is closed (__del__) at once, on the application's thread.
        self._pending = _PendingCalls()
        self._on_call = _lib.call_cb(self._pending.done)
        cfg = _lib.pm_client_config(**self._config)
        handle = ctypes.c_void_p()
        rc = _lib_.pm_client_open(ctypes.byref(cfg), ctypes.byref(handle))
        if rc < 0:
            raise _open_failed(rc, self._config)
        self._handle = handle.value

    # ---- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Ends every events() loop of this client, waits for the calls running, and frees the
        client. Pending asyncio calls are cancelled. Calling it again does nothing."""
        with self._mutex:
            handle, self._handle = self._handle, None
            sessions = list(self._sessions)
            while self._busy:
                self._lock.wait()
        for session in sessions:
            session.close()
        if handle is not None:
            _lib_.pm_client_close(handle)
        self._pending.cancel_all()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None:
            self.close()

    def _acquire(self) -> int:
        with self._mutex:
            if self._handle is None:
                raise ValueError("pipemsg.Client is closed")
            self._busy += 1
            return self._handle

    def _release(self) -> None:
        with self._mutex:
            self._busy -= 1
            self._lock.notify_all()

    # ---- commands ------------------------------------------------------------------------

    def call(self, command: str, **params: Any) -> Dict[str, Any]:
        """Any command, the contract's or not: keywords are its Params by their protocol names
        (c.call("StartVpn", Location="de")). Returns the answer's Data as a dict ({} when it
        had none); raises pipemsg.Error (or the subclass named after the result) unless Ok."""
        return self._call(command, params)

    def _call(self, command: str, params: Mapping[str, Any]) -> Dict[str, Any]:
        name = _c_string(command, "command")
        body = _params_body(command, params)
        out = ctypes.c_void_p()
        handle = self._acquire()
        try:
            r = _lib_.pm_client_call(handle, name, body, ctypes.byref(out))
        finally:
            self._release()
        if r.code != _lib.PM_RC_OK:
            _raise_for(r)
        if not out.value:
            return {}
        try:
            return _data_of(command, ctypes.string_at(out.value))
        finally:
            _lib_.pm_client_free(out)

    def _typed_call(self, command: str, params: Mapping[str, Any],
                    answer: Optional[Type[Record]]) -> Any:
        return decode_answer(command, answer, self._call(command, params_of(params)))

    async def acall(self, command: str, **params: Any) -> Dict[str, Any]:
        """The asyncio form of call(); the call runs on the library's own thread."""
        return await self._acall(command, params)

    def _acall(self, command: str, params: Mapping[str, Any]) -> "asyncio.Future[Any]":
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[Any]" = loop.create_future()
        name = _c_string(command, "command")
        body = _params_body(command, params)
        handle = self._acquire()
        try:
            token = self._pending.add(loop, fut, command)
            rc = _lib_.pm_client_call_async(handle, name, body, self._on_call,
                                            ctypes.c_void_p(token))
        finally:
            self._release()
        if rc < 0:
            self._pending.pop(token)
            raise _failed(rc, command)
        fut.add_done_callback(lambda f: self._cancelled(f, token))
        return fut

    def _cancelled(self, fut: "asyncio.Future[Any]", token: int) -> None:
        """A call whose future asyncio cancelled (wait_for, a cancelled task) is cancelled in
        the library too: not sent if it still waits its turn, else no longer waited for, so
        that the calls after it do not wait behind it."""
        if not fut.cancelled() or not self._pending.has(token):
            return
        with self._mutex:
            if self._handle is not None:
                _lib_.pm_client_call_cancel(self._handle, ctypes.c_void_p(token))

    async def _atyped_call(self, command: str, params: Mapping[str, Any],
                           answer: Optional[Type[Record]]) -> Any:
        return decode_answer(command, answer, await self._acall(command, params_of(params)))

    # ---- events --------------------------------------------------------------------------

    def _session(self, observe: bool, client_name: Optional[str], start: "_Start",
                 wake: Optional[Callable[[], None]]) -> _EventSession:
        with self._mutex:
            if self._handle is None:
                raise ValueError("pipemsg.Client is closed")
            session = _EventSession(_SessionCore(self._config, observe, client_name, start,
                                                 wake))
            self._sessions.add(session.core)
            return session

    def events(self, observe: bool = False, *, client_name: Optional[str] = None,
               resume: Optional[Tuple[int, int]] = None, from_now: bool = False
               ) -> EventStream:
        """Attaches to the event pipe and yields its events: for ev in c.events(): ...

        Each event is confirmed when the loop body has finished with it (the loop comes back
        for the next one), so an exception in the body leaves it unconfirmed and the service
        sends it again on the next attach; ev.confirm() confirms it at once. Leaving the loop
        detaches. The library answers heartbeats and reconnects (a service restart) by itself.
        A body slower than the service's acknowledgement timeout (--ack-timeout-ms, 1 s by
        default) ends the session: the service sends the event again, not delivered twice, and
        it is confirmed only when the body finishes (one that then raises leaves it queued).

        observe: attach as an observer (every event published from now on, none confirmed,
        none taken from the service's queue).
        resume: a cursor (epoch, last_id), the cursor of an earlier stream: the events of that
            epoch up to last_id are not delivered again, even those never confirmed; a cursor
            of another epoch than the service's resumes from what it kept. By default a stream
            gets everything the service has kept for its client.
        from_now: only events published once the stream is attached: what the service has
            queued then is discarded (reattaching after a service restart resumes as usual).

        resume and from_now exclude each other; an observer takes neither."""
        return EventStream(self, self._session(observe, client_name,
                                               _start_of(observe, resume, from_now), None))

    def aevents(self, observe: bool = False, *, client_name: Optional[str] = None,
                resume: Optional[Tuple[int, int]] = None, from_now: bool = False
                ) -> AsyncEventStream:
        """The asyncio form of events(): async for ev in c.aevents(): ..."""
        start = _start_of(observe, resume, from_now)
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:
                pass  # the loop is closed: nobody waits

        return AsyncEventStream(self, self._session(observe, client_name, start, wake), ready)


# Where a stream starts: a resume cursor or None, and whether from now.
_Start = Tuple[Optional[Tuple[int, int]], bool]


def _start_of(observe: bool, resume: Optional[Tuple[int, int]], from_now: bool) -> _Start:
    """events()' resume and from_now, checked: ValueError for what the library would
    silently ignore or mix."""
    if resume is not None:
        if observe or from_now:
            raise ValueError("resume takes neither observe nor from_now")
        try:
            epoch, last_id = (int(v) for v in resume)
        except (TypeError, ValueError):
            raise ValueError(f"resume must be a cursor (epoch, last_id), not {resume!r}") from None
        # (0, 0), the cursor of a stream that has seen nothing, is no cursor, as in C.
        if min(epoch, last_id) < 0 or max(epoch, last_id) >= 2**63:
            raise ValueError(f"resume must be a cursor (epoch, last_id), not {resume!r}")
        return (epoch, last_id), False
    if from_now and observe:
        raise ValueError("an observer sees only what is published from now on: from_now is "
                         "for a client")
    return None, bool(from_now)


def _settle_result(fut: "asyncio.Future[Any]", value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _settle_error(fut: "asyncio.Future[Any]", exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _settle_cancel(fut: "asyncio.Future[Any]", _: None) -> None:
    fut.cancel()

