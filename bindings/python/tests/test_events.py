"""events(): typed data, confirmation when the loop body finishes, observers, a service
restart while iterating."""

import time

import pytest

from conftest import await_queued

import pipemsg


def emit(c, type_, data=None, count=1):
    params = {"Type": type_, "Count": count}
    if data is not None:
        params["Data"] = data
    return c.call("EmitEvent", **params)


def take(stream, n):
    out = []
    for ev in stream:
        out.append(ev)
        if len(out) == n:
            ev.confirm()
            break
    return out


def test_typed_events(client):
    emit(client, "StateChanged", {"State": "Connected", "Location": "se"})
    emit(client, "Custom", {"A": 1})
    emit(client, "Bare")
    with client.events() as stream:
        a, b, c = take(stream, 3)
    assert (a.type, b.type, c.type) == ("StateChanged", "Custom", "Bare")
    assert a.id < b.id < c.id
    assert a.epoch >= 1 and a.time
    assert a.data == {"State": "Connected", "Location": "se"}
    assert isinstance(a.typed, pipemsg.StateChanged)
    assert a.typed.state == "Connected" and a.typed.location == "se" and a.typed.error is None
    assert b.data == {"A": 1} and b.typed is None
    assert c.data == {}


def test_events_confirmed_when_body_finishes(client):
    emit(client, "Custom", count=3)
    seen = []
    for ev in client.events():
        seen.append(ev.id)
        if len(seen) == 3:
            ev.confirm()
            break
    # All three confirmed: nothing is left for the next attach.
    await_queued(client, 0)
    emit(client, "After")
    assert [ev.type for ev in take(client.events(), 1)] == ["After"]


class Boom(Exception):
    pass


def test_exception_leaves_event_unconfirmed(client, service):
    first, _ = emit(client, "Custom", count=2).values()
    with pytest.raises(Boom):
        for ev in client.events():
            if ev.id == first + 1:
                raise Boom()
    # The loop was left (the service saw the session end), the first event was confirmed by
    # coming back for the next one, the second one was not: the next attach gets it again.
    again = take(client.events(), 1)
    assert [ev.id for ev in again] == [first + 1]
    await_queued(client, 0)


def await_ack_failures(client, n, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while client.get_stats().events.ack_failures < n:
        if time.monotonic() > deadline:
            pytest.fail(f"fewer than {n} confirmations timed out")
        time.sleep(0.01)


def test_slow_body_that_raises_leaves_event_queued(client, service):
    # A body slower than the acknowledgement timeout: the session ends and the event is sent
    # again on the next one, which times out too (the library confirms no copy and its resume
    # cursor leaves the event out). The body then raises: the next attach gets the event.
    service.restart("--ack-timeout-ms", "200")
    emit(client, "Custom")
    with pytest.raises(Boom):
        for ev in client.events():
            first = ev.id
            await_ack_failures(client, 2)
            raise Boom()
    assert ids(take(client.events(), 1)) == [first]
    await_queued(client, 0)


def test_break_without_confirm_redelivers(client):
    emit(client, "Custom")
    for ev in client.events():
        first = ev.id
        break
    assert [ev.id for ev in take(client.events(), 1)] == [first]


def test_observe(client):
    with client.events(observe=True) as obs:
        # An observer sees what is published once it is attached.
        assert obs.wait_attached(30)
        emit(client, "StateChanged", {"State": "Connecting", "Location": "de"})
        ev = take(obs, 1)[0]
    assert ev.typed.state == "Connecting"
    # An observer takes nothing from the queue: the real client still gets the event.
    assert [e.id for e in take(client.events(), 1)] == [ev.id]


def test_stream_close_from_client_close(service):
    c = pipemsg.Client()
    stream = c.events()
    c.close()
    assert list(stream) == []


def test_service_restart_during_events(client, service):
    emit(client, "Before")
    got = []
    for ev in client.events():
        got.append(ev.type)
        if ev.type == "Before":
            # The service goes away mid-loop and comes back (a new epoch, its queue empty in
            # memory); the library reconnects by itself and the loop goes on.
            service.restart()
            emit(client, "After")
        elif ev.type == "After":
            ev.confirm()
            break
    assert got == ["Before", "After"]


def ids(events):
    return [ev.id for ev in events]


def test_resume_skips_what_was_confirmed(client):
    a, _ = emit(client, "Custom", count=3).values()
    stream = client.events()
    assert stream.cursor == (0, 0)
    for ev in stream:
        if ev.id == a + 2:
            break  # the third one in hand, unconfirmed
    # The loop finished with the first two: that is the cursor, the third is not in it.
    epoch, last_id = stream.cursor
    assert last_id == a + 1 and epoch >= 1
    stream.close()
    emit(client, "Custom")
    resumed = client.events(resume=(epoch, last_id))
    assert resumed.cursor == (epoch, last_id)
    got = take(resumed, 2)
    assert ids(got) == [a + 2, a + 3]
    assert resumed.cursor == (epoch, a + 3)
    resumed.close()
    await_queued(client, 0)


def test_resume_cursor_drops_what_was_never_confirmed(client):
    # The cursor is the C API's: what it covers is not delivered again, even unconfirmed
    # (an application that handled events but could not confirm them before it stopped).
    a, _ = emit(client, "Custom", count=3).values()
    for ev in client.events():
        break  # nothing confirmed: all three stay queued
    epoch = client.get_stats().events.epoch
    skipped = client.get_stats().events.resume_skipped
    got = take(client.events(resume=(epoch, a + 1)), 1)
    assert ids(got) == [a + 2]
    assert client.get_stats().events.resume_skipped == skipped + 2
    # A cursor of another epoch is ignored: what the service kept comes.
    b, _ = emit(client, "Custom").values()
    assert ids(take(client.events(resume=(epoch + 1, b)), 1)) == [b]
    # (0, 0), a stream's cursor before any event, is no cursor.
    c, _ = emit(client, "Custom").values()
    assert ids(take(client.events(resume=(0, 0)), 1)) == [c]


def test_from_now_skips_what_was_queued(client):
    emit(client, "Old", count=2)
    with client.events(from_now=True) as stream:
        assert stream.wait_attached(10)
        emit(client, "New")
        got = take(stream, 1)
    assert [ev.type for ev in got] == ["New"]
    await_queued(client, 0)


def test_aevents_resume_and_from_now(client):
    import asyncio

    a, _ = emit(client, "Custom", count=2).values()
    epoch = client.get_stats().events.epoch

    async def first(**kw):
        async with client.aevents(**kw) as stream:
            async for ev in stream:
                ev.confirm()
                return ev, stream.cursor

    ev, cursor = asyncio.run(first(resume=(epoch, a)))
    assert ev.id == a + 1 and cursor == (epoch, a + 1)

    async def from_now():
        async with client.aevents(from_now=True) as stream:
            assert await stream.wait_attached()
            emit(client, "New")
            async for ev in stream:
                ev.confirm()
                return ev

    emit(client, "Old")
    assert asyncio.run(from_now()).type == "New"


@pytest.mark.parametrize("kw", [dict(resume=(1, 2), from_now=True),
                                dict(observe=True, resume=(1, 2)),
                                dict(observe=True, from_now=True),
                                dict(resume=(1,)), dict(resume=(-1, 0)), dict(resume="ab"),
                                dict(resume=(1, 2**63))])
def test_start_options_refused(client, kw):
    with pytest.raises(ValueError):
        client.events(**kw)
