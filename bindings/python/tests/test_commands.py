"""Every typed command against a live pipemsgd, the generic call, and the errors."""

import os
import tempfile
import time

import pytest

import pipemsg


def wait_state(c, state, timeout_s=10):
    """Polls GetState until it says state (the simulated connect takes 100 ms)."""
    deadline = time.monotonic() + timeout_s
    while (now := c.get_state().state) != state:
        assert time.monotonic() < deadline, f"still {now}, not {state}"
        time.sleep(0.02)


def test_get_state(client):
    st = client.get_state()
    assert isinstance(st, pipemsg.GetStateAnswer)
    assert st.state == "Disconnected"
    assert st.kill_switch is False
    assert st.reconnection_enabled is True
    assert st.bypass_domains == []
    assert st.since.endswith("Z")
    assert st.last_error is None
    assert st.as_dict()["State"] == "Disconnected"


def test_get_version(client):
    v = client.get_version()
    assert v.service == "pipemsgd"
    assert v.protocol >= 1
    assert v.version


def test_get_commands(client):
    ans = client.get_commands()
    names = {cmd.name for cmd in ans.commands}
    assert names == set(pipemsg.COMMANDS)  # the service runs with --test-commands
    start = next(cmd for cmd in ans.commands if cmd.name == "StartVpn")
    assert [p.name for p in start.params] == ["Location", "EnableKillSwitch"]
    assert start.params[0].default == "auto"
    assert {e.type for e in ans.events} == set(pipemsg.EVENTS)
    assert "domain" in {f.name for f in ans.formats}


def test_start_stop_vpn_and_traffic(client):
    assert client.start_vpn(location="de", enable_kill_switch=False).state == "Connecting"
    wait_state(client, "Connected")
    st = client.get_state()
    assert st.location == "de"
    t = client.get_traffic()
    assert t.bytes_sent >= 0 and t.bytes_received >= 0
    assert client.stop_vpn().state == "Disconnecting"
    wait_state(client, "Disconnected")


def test_start_vpn_default_location(client):
    client.start_vpn()
    assert client.get_state().location == "auto"


def test_kill_switch(client):
    assert client.enable_kill_switch() is None
    assert client.get_state().kill_switch is True
    assert client.disable_kill_switch() is None
    assert client.get_state().kill_switch is False


def test_reconnection(client):
    assert client.set_reconnection_enabled(enabled=False) is None
    assert client.is_reconnection_enabled().enabled is False
    client.set_reconnection_enabled(enabled=True)
    assert client.is_reconnection_enabled().enabled is True


def test_bypass_domains(client):
    assert client.configure_bypass_domains(domains=["example.com", "*.example.org"]).count == 2
    assert client.get_state().bypass_domains == ["example.com", "*.example.org"]
    assert client.configure_bypass_domains(domains=[]).count == 0


def test_get_stats(client):
    client.get_state()
    s = client.get_stats()
    assert isinstance(s.commands, pipemsg.CommandStats)
    assert s.commands.ok >= 1
    assert s.events.epoch >= 1
    assert s.events.attached is False


def test_generic_call(client):
    assert client.call("Echo", A=1, B=["x"]) == {"A": 1, "B": ["x"]}
    assert client.call("GetState")["State"] == "Disconnected"
    assert client.call("EnableKillSwitch") == {}
    ids = client.call("EmitEvent", Type="Custom", Count=3)
    assert ids["LastId"] - ids["FirstId"] == 2


def test_bad_request(client):
    with pytest.raises(pipemsg.BadRequest) as e:
        client.start_vpn(location="not a location")
    assert e.value.result == "BadRequest"
    assert "Location" in e.value.message
    assert e.value.from_service
    with pytest.raises(pipemsg.BadRequest):
        client.call("NoSuchCommand")


def test_too_many_requests(client):
    client.start_vpn(location="de")
    with pytest.raises(pipemsg.TooManyRequests) as e:
        client.start_vpn(location="de")
    assert e.value.result == "TooManyRequests"
    assert "already" in e.value.message
    assert isinstance(e.value, pipemsg.Error)


def test_error_from_service(service, monkeypatch):
    # settings.json made a directory: the atomic rename cannot replace it, so a setting
    # cannot be kept and the service answers Error (test_service_faults does the same).
    data_dir = os.path.join(service.dir, "data")
    service.restart("--data-dir", data_dir)
    os.mkdir(os.path.join(data_dir, "settings.json"))
    with pipemsg.Client() as c:
        with pytest.raises(pipemsg.Error) as e:
            c.enable_kill_switch()
    assert type(e.value) is pipemsg.Error
    assert e.value.result == "Error"
    assert e.value.message == "the setting could not be saved in the data directory"


def test_connection_timeout_without_service():
    with tempfile.TemporaryDirectory(prefix="pmpy.") as d:
        with pipemsg.Client(os.path.join(d, "cmd"), os.path.join(d, "evt"),
                            connect_timeout_ms=300) as c:
            t0 = time.monotonic()
            with pytest.raises(pipemsg.ConnectionTimeout) as e:
                c.get_state()
            took = time.monotonic() - t0
    assert e.value.result == "ConnectionTimeout"
    assert e.value.from_service is False
    assert e.value.message
    # Given up within the connect timeout (300 ms) plus a slow machine's margin.
    assert took < 3


def test_bad_pipe_name():
    with pytest.raises(pipemsg.InvalidArgument) as e:
        pipemsg.Client("relative/not/allowed")
    assert e.value.result == "InvalidArgument" and not e.value.from_service


def test_closed_client(service):
    c = pipemsg.Client()
    c.close()
    c.close()
    with pytest.raises(ValueError):
        c.get_state()


def test_error_classes():
    for name in ("BadRequest", "TooManyRequests", "ServiceNotInitialized", "ConnectionTimeout",
                 "Timeout", "TransportError", "TransportNotAuthorized"):
        cls = getattr(pipemsg, name)
        assert issubclass(cls, pipemsg.Error) and cls.__name__ == name
        assert pipemsg.error_class(name) is cls
    assert pipemsg.error_class("Error") is pipemsg.Error
    assert pipemsg.error_class("SomethingNew") is pipemsg.Error


def test_dropped_client_is_closed(service):
    import gc
    import weakref
    c = pipemsg.Client()
    c.get_state()
    ref = weakref.ref(c)
    gc.disable()  # closed by its reference count, not by the cycle collector
    try:
        del c
        assert ref() is None
    finally:
        gc.enable()


def test_timeout_without_answer(tmp_path):
    import asyncio
    import socket
    path = str(tmp_path / "cmd")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(path)
        srv.listen(4)
        # Connected (the backlog takes the connection), never answered.
        with pipemsg.Client(path, str(tmp_path / "evt"), response_timeout_ms=300) as c:
            with pytest.raises(pipemsg.Timeout) as e:
                c.get_state()
            assert e.value.result == "Timeout" and not e.value.from_service
            with pytest.raises(pipemsg.Timeout):
                asyncio.run(c.aget_state())


def test_transport_error_when_closed_unanswered(tmp_path):
    import socket
    import threading
    path = str(tmp_path / "cmd")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def close_one():
        conn, _ = srv.accept()
        conn.close()

    t = threading.Thread(target=close_one)
    t.start()
    try:
        with pipemsg.Client(path, str(tmp_path / "evt")) as c:
            with pytest.raises(pipemsg.TransportError) as e:
                c.get_state()
        assert e.value.result == "TransportError" and e.value.message
    finally:
        t.join(30)
        srv.close()
