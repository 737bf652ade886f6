"""What keeps a stream's library client and callbacks alive: a session orphaned by an exception
before its stream exists, a stream whose Client the application did not keep, a stream whose
__init__ never ran, and the bound on what an observer's stream buffers."""

import asyncio
import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import await_queued

import pipemsg
from pipemsg import _client

PACKAGE_DIR = Path(__file__).resolve().parents[1]

# A KeyboardInterrupt (a Ctrl-C, a signal handler raising) landing after events() made its
# session and before the stream that would close it: injected by an EventStream whose __init__
# raises, once the session is attached. The collected session must be detached before its
# ctypes callbacks go, or the events published next reach freed callbacks (SIGSEGV).
ORPHAN = r"""
import gc, sys
import pipemsg, pipemsg._client as pc

real = pc.EventStream
class Interrupted(real):
    def __init__(self, *args):
        session = args[-1]
        getattr(session, "core", session).wait_attached(10)
        raise KeyboardInterrupt
c = pipemsg.Client()
# A witness attached first: its callbacks do not take the memory the orphan's leave.
witness = c.events(observe=True)
witness.wait_attached(10)
pc.EventStream = Interrupted
try:
    c.events(observe=True)
    sys.exit("events() was not interrupted")
except KeyboardInterrupt:
    pass
pc.EventStream = real
gc.collect()
attached = len(getattr(pc, "_ATTACHED", ())) - 1
# Published to both observers: once the witness has them all, the orphan has been sent them.
for _ in range(4):
    c.call("EmitEvent", Type="Demo", Count=5)
    assert sum(1 for _ in zip(range(5), witness)) == 5
witness.close()
print("sessions still attached after the orphan was collected:", attached)
sys.exit(1 if attached else 0)
"""


def test_orphaned_session_is_closed_not_crashed(service):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR))
    p = subprocess.run([sys.executable, "-B", "-c", ORPHAN], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, f"exit status {p.returncode}\n{p.stdout}\n{p.stderr}"


# A KeyboardInterrupt landing in the stream's close() just after it took its lock, injected in
# threading.Condition.__enter__ (Python code, where a signal handler may raise): the lock must
# not stay held, or the library's thread waits for it with the next event and closing the
# client (which joins that thread) hangs.
INTERRUPTED_CLOSE = r"""
import threading
import pipemsg

c = pipemsg.Client()
st = c.events(observe=True)
st.wait_attached(10)
real = threading.Condition.__enter__
def enter(self):
    real(self)
    threading.Condition.__enter__ = real
    raise KeyboardInterrupt
threading.Condition.__enter__ = enter
try:
    st.close()
except KeyboardInterrupt:
    pass
threading.Condition.__enter__ = real
c.call("EmitEvent", Type="Demo", Count=3)
c.close()
print("closed")
"""


def test_interrupted_close_leaves_no_lock_held(service):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR))
    try:
        p = subprocess.run([sys.executable, "-B", "-c", INTERRUPTED_CLOSE], env=env,
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the client's close() hung: a lock was left held")
    assert p.returncode == 0 and "closed" in p.stdout, p.stderr


# A session closed again on the library's thread, inside an event callback, while close() on
# the main thread is in pm_client_close (which joins that thread): what a garbage collection
# there does when it collects an EventStream in a reference cycle, or runs the session's
# finalizer. The second close must not wait for the first, or neither ever returns.
CLOSE_FROM_CALLBACK = r"""
import faulthandler, sys, threading, time
import pipemsg
from pipemsg import _client

c = pipemsg.Client()
st = c.events()
core = st._session
in_cb = threading.Event()
orig = _client._SessionCore._take_event

def take(self, c_ev):
    in_cb.set()
    while not self._closed:  # the main thread has entered close() ...
        time.sleep(0.001)
    time.sleep(0.2)          # ... and is in pm_client_close, joining this thread
    self.close()             # what a collection here would do
    return orig(self, c_ev)

_client._SessionCore._take_event = take
c.call("EmitEvent", Type="Demo", Count=1)
assert in_cb.wait(10), "no event"
faulthandler.dump_traceback_later(20, exit=True)
core.close()
faulthandler.cancel_dump_traceback_later()
# An explicit close detaches the finalizer: a later collection closes nothing again.
assert not st._keep._finalizer.alive, "the finalizer is still armed"
c.close()
print("closed")
"""


def test_close_from_callback_during_close(service):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR))
    try:
        p = subprocess.run([sys.executable, "-B", "-c", CLOSE_FROM_CALLBACK], env=env,
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("close() hung: a close on the library's thread waited for it")
    assert p.returncode == 0 and "closed" in p.stdout, p.stderr


def test_stream_without_init_raises_nothing(service):
    # __del__ of a stream whose __init__ did not run: an AttributeError there is only
    # printed by Python ("Exception ignored in"), so call it directly.
    _client.EventStream.__new__(_client.EventStream).__del__()
    _client.AsyncEventStream.__new__(_client.AsyncEventStream).__del__()


def test_stream_keeps_its_client(service):
    with pipemsg.Client() as c:
        c.call("EmitEvent", Type="Demo", Count=3)
    got = []
    for ev in pipemsg.Client().events():
        got.append(ev.id)
        if len(got) == 3:
            ev.confirm()
            break
    assert len(got) == 3
    with pipemsg.Client() as c:
        await_queued(c, 0)


def test_async_stream_keeps_its_client(service):
    with pipemsg.Client() as c:
        c.call("EmitEvent", Type="Demo", Count=2)

    async def main():
        got = []
        async for ev in pipemsg.Client().aevents():
            got.append(ev.id)
            if len(got) == 2:
                ev.confirm()
                break
        return got

    assert len(asyncio.run(main())) == 2


def test_observer_buffer_bounded_by_bytes(service):
    """An observer that does not iterate: events of 1 MiB fill the binding's buffer up to
    EVENTS_BUFFERED_BYTES_MAX, then the library's thread waits, the service's socket fills and
    the service cuts the observer off (TooSlow)."""
    with pipemsg.Client() as c, c.events(observe=True) as st:
        assert st.wait_attached(10)
        blob = "x" * (1 << 20)
        for _ in range(24):
            c.call("EmitEvent", Type="Blob", Data={"B": blob})
        service.await_log("TooSlow", 30)
        buffered = list(st._session._buf)
        assert len(buffered) <= _client.EVENTS_BUFFERED_BYTES_MAX >> 20
        assert sum(size for _, size in buffered) <= _client.EVENTS_BUFFERED_BYTES_MAX
