"""events(): typed data, confirmation when the loop body finishes, observers, a service
restart while iterating."""

import pytest

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
    assert client.get_stats().events.queued == 0
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
    assert client.get_stats().events.queued == 0


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
