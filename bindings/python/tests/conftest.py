"""A live pipemsgd for each test: build/bin/pipemsgd on private pipes in a temporary directory,
ready once it says READY=1 on NOTIFY_SOCKET (as tests/testutil.c does), stopped with SIGTERM.

CTest passes the build's directories (PM_BIN_DIR) and library (PIPEMSG_LIBRARY); run by hand,
the source tree's build/ is used:
    PYTHONPATH=bindings/python python3 -m pytest bindings/python/tests
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bindings" / "python"))
BIN_DIR = Path(os.environ.get("PM_BIN_DIR", ROOT / "build" / "bin"))

# How long a service may take to come up or stop on a slow, shared machine (tests/testutil.c).
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10
# Every test's service: test commands, a quick simulated connect, a location that fails.
BASE_ARGS = ["--test-commands", "--connect-delay-ms", "100", "--sim-unreachable", "nowhere"]


@pytest.fixture(scope="session", autouse=True)
def runtime_dir():
    """Bare pipe names resolve here, never in /run/pipemsg or the user's runtime dir."""
    with tempfile.TemporaryDirectory(prefix="pmpy-rt.") as d:
        os.environ["PIPEMSG_RUNTIME_DIR"] = d
        yield d


class Service:
    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.command_pipe = os.path.join(directory, "cmd")
        self.event_pipe = os.path.join(directory, "evt")
        self.log_path = os.path.join(directory, "log")
        self.proc: Optional[subprocess.Popen] = None

    def start(self, *extra: str) -> None:
        assert self.proc is None
        notify = os.path.join(self.dir, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify)
        env = dict(os.environ, NOTIFY_SOCKET=notify)
        # The service is a C program: what the sanitizer build preloads into python is not
        # for it (conftest_env in tests/CMakeLists.txt).
        for name in ("LD_PRELOAD", "ASAN_OPTIONS"):
            env.pop(name, None)
        if os.environ.get("PM_CHILD_ASAN_OPTIONS"):
            env["ASAN_OPTIONS"] = os.environ["PM_CHILD_ASAN_OPTIONS"]
        argv: List[str] = [str(BIN_DIR / "pipemsgd"), "-c", self.command_pipe, "-e",
                           self.event_pipe, *BASE_ARGS, *extra]
        try:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=log, env=env)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    pytest.fail(f"pipemsgd did not report READY=1; log:\n{self.log()}")
                sock.settimeout(min(left, 0.5))
                try:
                    if b"READY=1" in sock.recv(256):
                        break
                except socket.timeout:
                    pass
        finally:
            sock.close()
            os.unlink(notify)

    def stop(self) -> int:
        """SIGTERM, then the exit status (pytest fails when it does not end in time)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"pipemsgd did not stop on SIGTERM; log:\n{self.log()}")
        self.proc = None
        return rc

    def restart(self, *extra: str) -> None:
        assert self.stop() == 0
        self.start(*extra)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def await_log(self, text: str, timeout_s: float = 10) -> None:
        """Waits until the log holds text (its lines are written as things finish)."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if time.monotonic() > deadline:
                pytest.fail(f"pipemsgd's log never said {text!r}:\n{self.log()}")
            time.sleep(0.01)


@pytest.fixture
def service(monkeypatch):
    """A running pipemsgd, found by the clients through PIPEMSG_COMMAND_PIPE / _EVENT_PIPE."""
    with tempfile.TemporaryDirectory(prefix="pmpy.") as d:
        svc = Service(d)
        svc.start()
        monkeypatch.setenv("PIPEMSG_COMMAND_PIPE", svc.command_pipe)
        monkeypatch.setenv("PIPEMSG_EVENT_PIPE", svc.event_pipe)
        try:
            yield svc
        finally:
            if svc.proc is not None:
                assert svc.stop() == 0, svc.log()


@pytest.fixture
def client(service):
    import pipemsg
    with pipemsg.Client() as c:
        yield c


def await_queued(client, n: int = 0, timeout_s: float = 10) -> None:
    """Waits until the service's queue holds n events. A confirmation sent on the event pipe and
    a GetStats on the command pipe reach the service in either order, so one look may be early."""
    deadline = time.monotonic() + timeout_s
    while (queued := client.get_stats().events.queued) != n:
        if time.monotonic() > deadline:
            pytest.fail(f"the service's queue holds {queued} events, not {n}")
        time.sleep(0.01)
