"""The speakers' benchmark runs end to end on a private Mosquitto (passwords, the speakers'
ACL, TCP_NODELAY) and every payment's announcement is acknowledged (no timing is asserted)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_payment_is_announced_and_acknowledged_on_a_private_broker() -> None:
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()) \
            or not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto and mosquitto_passwd are not installed")
    done = subprocess.run(
        [sys.executable, "-m", "bench.speakers", "--speakers", "8", "--procs", "1",
         "--rate", "5", "--seconds", "1", "--private-broker"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "private: passwords, ACL, set_tcp_nodelay true" in out
    found = re.search(r"\[tree\] (\d+) payments offered .*; acknowledged (\d+)", out)
    assert found, out
    assert found.group(1) == found.group(2) == "5"
    assert re.search(r"platform per payment: [0-9.]+ ms CPU, [0-9.]+ SQL statements", out)
    assert "shared broker round trip" in out
