"""An acall that asyncio cancels (wait_for, a cancelled task) is cancelled in the library too:
one not sent yet is never sent, one in flight is no longer waited for, and the calls after them
do not wait behind them until the response timeout."""

import asyncio
import json
import socket
import struct
import threading

import pipemsg


def read_frame(conn):
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        more = conn.recv(65536)
        if not more:
            return None
        data += more
    return data[4:]


class FakeService:
    """Answers every command Ok, except Slow, which it holds unanswered until stop()."""

    def __init__(self, path):
        self.seen = []
        self.slow = threading.Event()
        self.done = threading.Event()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            frame = read_frame(conn)
            if frame is None:
                return
            req = json.loads(frame)["Request"]
            self.seen.append(req["Command"])
            if req["Command"] == "Slow":
                self.slow.set()
                self.done.wait(60)
                return
            head = {"Command": req["Command"], "Result": "Ok"}
            if "Id" in req:
                head["Id"] = req["Id"]
            body = json.dumps({"Response": head}).encode()
            conn.sendall(struct.pack(">I", len(body)) + body)

    def stop(self):
        self.done.set()
        self.srv.close()


def test_cancelled_acall_neither_sent_nor_waited_for(tmp_path):
    fake = FakeService(str(tmp_path / "cmd"))
    c = pipemsg.Client(str(tmp_path / "cmd"), str(tmp_path / "evt"), response_timeout_ms=120000)

    async def main():
        loop = asyncio.get_running_loop()
        slow = asyncio.ensure_future(c.acall("Slow"))
        assert await loop.run_in_executor(None, fake.slow.wait, 30)
        queued = asyncio.ensure_future(c.acall("Queued"))
        await asyncio.sleep(0)  # submitted: it waits behind Slow
        queued.cancel()
        slow.cancel()
        # Behind a call still waited for, this would wait the 120 s response timeout.
        assert await asyncio.wait_for(c.acall("GetState"), 30) == {}

    try:
        asyncio.run(main())
        assert fake.seen == ["Slow", "GetState"]
    finally:
        c.close()
        fake.stop()
