"""bindings/python/examples against a live pipemsgd, run as a user would."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script, *args):
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent))
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_start_and_wait(service):
    p = run("start_and_wait.py", "de")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Disconnected\nConnecting\nConnected\n"


def test_start_and_wait_fails(service):
    p = run("start_and_wait.py", "nowhere")
    assert p.returncode == 1
    assert p.stdout.startswith("Disconnected\nConnecting\n")
    assert "unreachable" in p.stderr
