"""The asyncio form: awaitable commands and async for over aevents()."""

import asyncio

import pytest

from conftest import await_queued

import pipemsg


def test_awaitable_commands(client):
    async def main():
        st, v = await asyncio.gather(client.aget_state(), client.aget_version())
        assert st.state == "Disconnected" and v.service == "pipemsgd"
        assert (await client.astart_vpn(location="de")).state == "Connecting"
        with pytest.raises(pipemsg.TooManyRequests):
            await client.astart_vpn(location="de")
        with pytest.raises(pipemsg.BadRequest):
            await client.aconfigure_bypass_domains(domains=["not a domain"])
        assert await client.acall("Echo", X=True) == {"X": True}

    asyncio.run(main())


def test_aevents(client):
    async def main():
        await client.acall("EmitEvent", Type="StateChanged",
                           Data={"State": "Connected", "Location": "se"})
        got = []
        async with client.aevents() as stream:
            async for ev in stream:
                got.append(ev)
                if ev.type == "StateChanged":
                    await client.acall("EmitEvent", Type="Next")
                else:
                    ev.confirm()
                    break
        return got

    got = asyncio.run(main())
    assert [ev.type for ev in got] == ["StateChanged", "Next"]
    assert got[0].typed.state == "Connected"
    await_queued(client, 0)


def test_aevents_exception_leaves_event_unconfirmed(client):
    class Boom(Exception):
        pass

    async def main():
        first = (await client.acall("EmitEvent", Type="Custom"))["FirstId"]
        with pytest.raises(Boom):
            async with client.aevents() as stream:
                async for ev in stream:
                    raise Boom()
        async with client.aevents() as stream:
            async for ev in stream:
                ev.confirm()
                return first, ev.id

    first, again = asyncio.run(main())
    assert again == first


def test_close_cancels_pending_calls(service):
    async def main():
        c = pipemsg.Client()
        fut = asyncio.ensure_future(c.aget_state())
        await asyncio.sleep(0)
        c.close()
        try:
            await fut
        except asyncio.CancelledError:
            return "cancelled"
        return "answered"

    # Either the call completed before the close, or it was cancelled: never left hanging.
    assert asyncio.run(asyncio.wait_for(main(), 30)) in ("cancelled", "answered")


def test_aevents_observe(client):
    async def main():
        async with client.aevents(observe=True) as obs:
            assert await asyncio.wait_for(obs.wait_attached(), 30)
            await client.astart_vpn(location="de")
            states = []
            async for ev in obs:
                if ev.type == "StateChanged":
                    states.append(ev.typed.state)
                    if ev.typed.state == "Connected":
                        return states

    assert asyncio.run(main()) == ["Connecting", "Connected"]
