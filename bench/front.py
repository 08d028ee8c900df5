"""nginx in front of the API processes, on a free port in a folder of its own: the front that
`fulema gateway nginx-config` writes, started by `bench.burst --front nginx` and the tests.

The http-level file is exactly what the command writes for production; the main file around it
here is what Debian's /etc/nginx/nginx.conf is (pid, logs, temporary files, one worker), with
every path in the run's folder. nginx runs in the foreground in its own process group, which
`bench.server.stop` ends by its id.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import orjson

from bench.server import Proc, free_port, stop
from fulema.core.channel_settings import RateLimitSection
from fulema.gateway.front import FrontOptions, render_nginx

TIMING_LOG = "timing.log"
NGINX_MISSING = ("nginx is not installed (Debian: apt-get install nginx; scripts/test.sh "
                 "installs it when run as root)")


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    return found


def main_conf(folder: Path, *, workers: int = 1) -> str:
    tmp = folder / "tmp"
    # As root nginx would run its workers as nobody, who cannot enter a private temp folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes {workers};\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} warn;\n"
            "events { worker_connections 4096; }\n"
            f"http {{\n{temp}\n    include {folder / 'fulema.conf'};\n}}\n")


def write(folder: Path, config: RateLimitSection, upstreams: list[str], *, port: int,
          max_body_bytes: int = 64 * 1024, workers: int = 1,
          real_ip_from: tuple[str, ...] = ("127.0.0.1",), conn_factor: float = 4.0,
          keepalive: int = 64, app_burst_seconds: float = 0.0) -> Path:
    """The front's files in `folder`, listening on 127.0.0.1:`port`; by default 127.0.0.1's
    X-Forwarded-For names the client (the load generator stands for a load balancer that
    sends each merchant's address). Every answer's times go to `timing.log` there
    (`TIMING_LOG`). Returns the main file."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    options = FrontOptions(upstreams=tuple(upstreams), listen=f"127.0.0.1:{port}",
                           real_ip_from=real_ip_from, zone_size="1m",
                           refusal_log=str(folder / "refusals.log"),
                           timing_log=str(folder / TIMING_LOG), conn_factor=conn_factor,
                           keepalive=keepalive, app_burst_seconds=app_burst_seconds,
                           max_body_bytes=max_body_bytes)
    (folder / "fulema.conf").write_text(render_nginx(config, options), encoding="utf-8")
    main = folder / "nginx.conf"
    main.write_text(main_conf(folder, workers=workers), encoding="utf-8")
    return main


def check(folder: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the folder's files."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError(NGINX_MISSING)
    return subprocess.run([binary, "-t", "-p", str(folder), "-c", str(folder / "nginx.conf"),
                           "-e", str(folder / "error.log")],
                          capture_output=True, text=True, check=False, timeout=30)


def start(folder: Path, config: RateLimitSection, upstreams: list[str], *,
          max_body_bytes: int = 64 * 1024, workers: int = 1,
          real_ip_from: tuple[str, ...] = ("127.0.0.1",), timeout: float = 15.0,
          conn_factor: float = 4.0, keepalive: int = 64,
          app_burst_seconds: float = 0.0, attempts: int = 3) -> Proc:
    """nginx on a free port in front of `upstreams`; returns once it answers as itself.

    The port is chosen free and then handed to nginx, and in that gap another process on
    the machine (a test suite's other worker) can take it: a connection to the port then
    reaches that process, not our nginx. So readiness is nginx's own answer to a probe no
    other server gives (a 413 in our error format for a body over the front's limit, which
    nginx answers before any bucket or upstream), and a lost port is tried again on another."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError(NGINX_MISSING)
    for _ in range(attempts):
        port = free_port()
        main = write(folder, config, upstreams, port=port, max_body_bytes=max_body_bytes,
                     workers=workers, real_ip_from=real_ip_from, conn_factor=conn_factor,
                     keepalive=keepalive, app_burst_seconds=app_burst_seconds)
        log = folder / "nginx.out"
        with log.open("ab") as fh:
            popen = subprocess.Popen([binary, "-p", str(folder), "-c", str(main),
                                      "-e", str(folder / "error.log"), "-g", "daemon off;"],
                                     stdout=fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        proc = Proc("nginx", popen, f"http://127.0.0.1:{port}", folder / "error.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                errors = _tail(folder / "error.log") + _tail(log)
                if "Address already in use" in errors:
                    break  # the port was taken in the gap: another one
                raise RuntimeError(f"nginx exited with {popen.returncode}: {errors}")
            answer = _probe(port, max_body_bytes)
            if answer == "ours":
                return proc
            if answer == "foreign" or "Address already in use" in _tail(folder / "error.log"):
                break
            time.sleep(0.05)
        else:
            stop(proc)
            raise RuntimeError(f"nginx did not answer on {port} within {timeout:.0f} s: "
                               f"{_tail(folder / 'error.log')}")
        stop(proc)
    raise RuntimeError(f"nginx lost its port to another process {attempts} times")


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except FileNotFoundError:
        return ""


def _probe(port: int, max_body_bytes: int) -> str:
    """"ours", "foreign" (something else answers on the port) or "none" (nothing yet)."""
    request = (f"POST /__fulema_front_probe HTTP/1.1\r\nHost: probe\r\n"
               f"Content-Length: {max_body_bytes + 1}\r\nConnection: close\r\n\r\n")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
            sock.sendall(request.encode())
            answer = b""
            # until the answer's end (nginx lingers before closing: it waits for the body)
            while len(answer) < 4096 and b"BODY_TOO_LARGE" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except ConnectionRefusedError:
        return "none"
    except OSError:
        return "foreign"  # accepted but did not answer the probe as nginx does at once
    head = answer.split(b"\r\n", 1)[0]
    return "ours" if b" 413 " in head and b"BODY_TOO_LARGE" in answer else "foreign"


def refusals(folder: Path, *, app_id: str | None = None) -> dict[str, int]:
    """The front's refusal log, counted: refused by nginx itself, and 429s the API processes
    answered (passed by the front, refused by the in-process limits); only `app_id`'s if
    given."""
    path = folder / "refusals.log"
    counts = {"front": 0, "in_process": 0}
    if not path.exists():
        return counts
    for line in path.read_text(errors="replace").splitlines():
        entry = orjson.loads(line)
        if app_id is not None and entry.get("app_id") != app_id:
            continue
        counts["in_process" if entry.get("upstream_status") else "front"] += 1
    return counts
