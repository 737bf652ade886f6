"""Client's settings refused with the setting named: timeouts a uint32_t cannot hold, pipe
names and expect_owner the library refuses. No service is needed: nothing is sent."""

import pytest

import pipemsg

TIMEOUTS = ("connect_timeout_ms", "response_timeout_ms", "handshake_timeout_ms",
            "reconnect_min_ms", "reconnect_max_ms")


@pytest.mark.parametrize("name", TIMEOUTS)
@pytest.mark.parametrize("value", [-1, 2**32, 2**40])
def test_timeout_out_of_range(name, value):
    with pytest.raises(ValueError, match=f"{name} must be 0 .* not {value}"):
        pipemsg.Client(**{name: value})


@pytest.mark.parametrize("name", TIMEOUTS)
def test_timeout_bounds_accepted(name, tmp_path):
    for value in (0, 2**32 - 1):
        pipemsg.Client(str(tmp_path / "c"), str(tmp_path / "e"), **{name: value}).close()


def test_timeout_not_an_int():
    with pytest.raises(TypeError, match="connect_timeout_ms must be an int"):
        pipemsg.Client(connect_timeout_ms=1.5)


@pytest.mark.parametrize("kw, says", [
    ({"command_pipe": ""}, "command_pipe ''"),
    ({"event_pipe": "rel/x"}, "event_pipe 'rel/x'"),
    ({"event_pipe": "x" * 300}, "event_pipe 'xxxx"),
    ({"command_pipe": "/" + "y" * 200}, "command_pipe '/yyy"),
    ({"expect_owner": "nosuchuser"}, "expect_owner 'nosuchuser'"),
])
def test_open_error_names_the_setting(kw, says, tmp_path):
    kw.setdefault("command_pipe", str(tmp_path / "c"))
    kw.setdefault("event_pipe", str(tmp_path / "e"))
    with pytest.raises(pipemsg.InvalidArgument) as e:
        pipemsg.Client(**kw)
    assert says in str(e.value)


def test_open_error_names_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEMSG_EVENT_PIPE", "a/b")
    with pytest.raises(pipemsg.InvalidArgument, match=r"event_pipe \(from \$PIPEMSG_EVENT_PIPE"):
        pipemsg.Client(str(tmp_path / "c"))
