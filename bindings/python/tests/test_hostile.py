"""Hostile values through the binding: each is refused with an exception that says why, before
or after a round trip, and the client (and the service) go on working."""

import asyncio

import pytest

import pipemsg


def nested(depth):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


def still_works(c):
    assert c.get_state().state == "Disconnected"


def test_string_larger_than_max_message(client):
    # 17 MiB: past the 16 MiB frame limit, refused before anything is sent.
    with pytest.raises(pipemsg.TransportError, match="frame length out of range"):
        client.call("Echo", Text="x" * (17 * 1024 * 1024))
    still_works(client)


def test_nesting_beyond_python(client):
    with pytest.raises(pipemsg.InvalidArgument, match="params cannot be sent as JSON: maximum "
                                                      "recursion depth"):
        client.call("Echo", V=nested(100000))
    still_works(client)


def test_nesting_beyond_the_message_limit(client):
    # Encodable by Python, too deep for a pipemsg message (PM_NESTING_MAX).
    with pytest.raises(pipemsg.InvalidArgument, match="nesting deeper than 64"):
        client.call("Echo", V=nested(100))
    assert client.call("Echo", V=nested(8)) == {"V": nested(8)}


@pytest.mark.parametrize("value,why", [(nested(100), "nesting deeper than 64"),
                                       (2**70, "too big integer"),
                                       ("\0", r"\\u0000 is not allowed")])
def test_acall_refusal_gives_the_reason(client, value, why):
    # The asyncio form says why as the blocking one does (the library answers the call
    # through its callback, without sending it).
    with pytest.raises(pipemsg.InvalidArgument, match=why) as sync:
        client.call("Echo", V=value)
    with pytest.raises(pipemsg.InvalidArgument, match=why) as via_async:
        asyncio.run(client.acall("Echo", V=value))
    assert str(via_async.value) == str(sync.value)
    assert not via_async.value.from_service
    assert asyncio.run(client.acall("Echo", V=nested(8))) == {"V": nested(8)}


@pytest.mark.parametrize("value,why", [(2**70, "too big integer"),
                                       (-2**70, "too big negative integer")])
def test_integers_beyond_64_bits(client, value, why):
    with pytest.raises(pipemsg.InvalidArgument, match=why):
        client.call("Echo", V=value)
    with pytest.raises(pipemsg.InvalidArgument, match=why):
        client.call("EmitEvent", Type="Demo", Count=value)
    still_works(client)


def test_negative_count_refused_by_the_service(client):
    with pytest.raises(pipemsg.BadRequest, match="Count must be an integer from 1"):
        client.call("EmitEvent", Type="Demo", Count=-1)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers(client, value):
    with pytest.raises(pipemsg.InvalidArgument, match="not JSON compliant"):
        client.call("Echo", V=value)


def test_nul_in_the_command_name_is_not_cut(client):
    # Cut at the NUL, this would run GetState.
    with pytest.raises(pipemsg.InvalidArgument, match="command contains a NUL"):
        client.call("GetState\0Evil")
    with pytest.raises(pipemsg.InvalidArgument, match="command contains a NUL"):
        asyncio.run(client.acall("GetState\0Evil"))


def test_nul_in_params(client):
    with pytest.raises(pipemsg.InvalidArgument, match="JSON_ALLOW_NUL"):
        client.call("Echo", T="a\0b")
    with pytest.raises(pipemsg.InvalidArgument, match="NUL byte in object key"):
        client.call("Echo", **{"a\0b": 1})
    with pytest.raises(pipemsg.InvalidArgument, match="JSON_ALLOW_NUL"):
        client.start_vpn(location="a\0b")
    still_works(client)


def test_nul_in_pipe_names_and_client_name(service):
    with pytest.raises(pipemsg.InvalidArgument, match="command_pipe contains a NUL"):
        pipemsg.Client(service.command_pipe + "\0x")
    with pytest.raises(pipemsg.InvalidArgument, match="expect_owner contains a NUL"):
        pipemsg.Client(expect_owner="root\0x")
    with pipemsg.Client() as c:
        with pytest.raises(pipemsg.InvalidArgument, match="client_name contains a NUL"):
            c.events(client_name="a\0b")


def test_lone_surrogates(client):
    with pytest.raises(pipemsg.InvalidArgument, match="params are not Unicode text"):
        client.call("Echo", T="\ud800")
    with pytest.raises(pipemsg.InvalidArgument, match="command is not Unicode text"):
        client.call("\udc00")
    with pytest.raises(pipemsg.InvalidArgument, match="not Unicode text"):
        asyncio.run(client.acall("Echo", T="x\udfff"))
    # Valid text beyond the BMP and U+FFFD go through as they are.
    assert client.call("Echo", T="\U0001f600\ufffd") == {"T": "\U0001f600\ufffd"}


def test_bytes_are_not_json(client):
    with pytest.raises(pipemsg.InvalidArgument, match="not JSON serializable"):
        client.call("Echo", T=b"\xff")


def test_calls_after_close(service):
    c = pipemsg.Client()
    c.close()
    c.close()  # twice is harmless
    with pytest.raises(ValueError, match="closed"):
        c.get_state()
    with pytest.raises(ValueError, match="closed"):
        c.call("GetState")
    with pytest.raises(ValueError, match="closed"):
        asyncio.run(c.acall("GetState"))
    with pytest.raises(ValueError, match="closed"):
        c.events()
