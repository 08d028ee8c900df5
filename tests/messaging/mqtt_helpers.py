"""What the MQTT tests share: is a broker there, a private Mosquitto with passwords and the
speakers' ACL on a free port, and waiting for a condition without a fixed sleep."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from fulema.messaging.broker import PLATFORM_USER, acl_text

SHARED_BROKER = ("127.0.0.1", 1883)
PORTS = range(9800, 9900)  # this helper's own ports


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def need_shared_broker() -> None:
    if not reachable(*SHARED_BROKER):
        pytest.skip("no MQTT broker at 127.0.0.1:1883 (Mosquitto): the speaker tests need one")


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 9800-9899")


@contextlib.contextmanager
def private_mosquitto(tmp_path: Path, *, prefix: str, users: dict[str, str],
                      extra_acl: str = "") -> Iterator[int]:
    """A Mosquitto of our own: anonymous refused, a password file made by mosquitto_passwd,
    the ACL of messaging.broker.acl_text (plus `extra_acl`), `set_tcp_nodelay true`. Yields
    its port; stopped (by pid) on exit. Also the speakers' benchmark's broker (bench/speakers.py
    --private-broker: a thousand users, hashed in one `mosquitto_passwd -U`)."""
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                              if Path("/usr/sbin/mosquitto").exists() else None)
    passwd_tool = shutil.which("mosquitto_passwd")
    if mosquitto is None or passwd_tool is None:
        pytest.skip("mosquitto and mosquitto_passwd are not installed (apt-get install mosquitto)")
    passwd, acl, conf = tmp_path / "passwd", tmp_path / "acl", tmp_path / "mosquitto.conf"
    passwd.write_text("".join(f"{user}:{password}\n" for user, password in users.items()),
                      encoding="utf-8")
    passwd.chmod(0o600)
    subprocess.run([passwd_tool, "-U", str(passwd)], check=True,  # noqa: S603
                   capture_output=True)
    acl.write_text(acl_text(prefix, PLATFORM_USER) + extra_acl, encoding="utf-8")
    port = free_port()
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {passwd}\nacl_file {acl}\npersistence false\n"
                    f"set_tcp_nodelay true\nuser root\n", encoding="utf-8")
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL,  # noqa: S603
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not reachable("127.0.0.1", port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the private mosquitto did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=5)


async def eventually(check: Callable[[], Awaitable[bool]], *, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.02)
