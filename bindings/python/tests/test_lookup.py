"""Where import pipemsg finds libpipemsg: PIPEMSG_LIBRARY first, then the build tree the
package sits in (a fresh interpreter each time: the library is loaded at import)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1]
BUILT = PACKAGE_DIR.parents[1] / "build" / "lib" / "libpipemsg.so.0"


def import_pipemsg(library):
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR))
    env.pop("PIPEMSG_LIBRARY", None)
    if library is not None:
        env["PIPEMSG_LIBRARY"] = library
    return subprocess.run([sys.executable, "-B", "-c",
                           "import pipemsg, pipemsg._lib as l; print(l.path)"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_build_tree_found_by_itself():
    if not BUILT.exists():
        pytest.skip(f"no {BUILT}: the source tree's build/ is not built")
    p = import_pipemsg(None)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(BUILT)


def test_pipemsg_library_overrides(tmp_path):
    missing = str(tmp_path / "libnothing.so")
    p = import_pipemsg(missing)
    assert p.returncode != 0
    assert "ImportError" in p.stderr and missing in p.stderr and "PIPEMSG_LIBRARY" in p.stderr
    if os.environ.get("PIPEMSG_LIBRARY"):
        p = import_pipemsg(os.environ["PIPEMSG_LIBRARY"])
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == os.environ["PIPEMSG_LIBRARY"]
