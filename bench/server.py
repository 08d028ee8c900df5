"""Starting and stopping what the harness measures: the Fulema server (uvicorn or granian, N
workers), with its background in process or in a separate `fulema worker` (the production
shape: `background="worker"`), the shared bankpay sandbox and the merchant's notify receiver.

Each runs in its own process group, which this module ends by its own id when done (and on any
error), so no server outlives a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Which copy of the code the servers run: FULEMA_BENCH_SRC points at another checkout's src/
# (bench.ab runs the commit before a change beside the change, in the same minute).
SRC = Path(os.environ.get("FULEMA_BENCH_SRC", str(ROOT / "src")))


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log: Path
    # the `fulema worker` that runs this server's background when its API processes do not
    # (stopped with it; its CPU is counted apart from theirs)
    worker: Proc | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def serving_pids(self) -> list[int]:
        """The processes that run the app: the worker children if any, else the process."""
        kids = _children(self.popen.pid)
        return kids or [self.popen.pid]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    if not task_dir.exists():
        return out
    for task in task_dir.iterdir():
        with contextlib.suppress(OSError):
            out += [int(p) for p in (task / "children").read_text().split()]
    # uvicorn/granian spawn workers via multiprocessing; skip its resource tracker helper
    return [p for p in out if b"resource_tracker" not in _cmdline(p)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def granian_available() -> bool:
    return importlib.util.find_spec("granian") is not None


def try_install(package: str) -> bool:
    """`pip install` into this virtualenv; False (and the reason is reported) if it fails."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", package],
                          capture_output=True, check=False, timeout=300)
    return done.returncode == 0


def start(name: str, argv: list[str], env: dict[str, str], log: Path, url: str,
          *, timeout: float = 60.0, wait: bool = True) -> Proc:
    """Spawn in its own process group; with `wait`, return once /ping answers."""
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{SRC}", **env}
    with log.open("ab") as fh:
        popen = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=fh, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    proc = Proc(name, popen, url, log)
    if wait:
        wait_ready(proc, timeout)
    return proc


def wait_ready(proc: Proc, timeout: float = 60.0) -> None:
    popen, name, url, log = proc.popen, proc.name, proc.url, proc.log
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {popen.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ping", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{name} did not answer /ping within {timeout:.0f} s; see {log}")


def stop(proc: Proc, *, grace: float = 15.0) -> None:
    """SIGTERM to the process group we created, then SIGKILL if it lingers; its worker too."""
    if proc.worker is not None:
        stop(proc.worker, grace=grace)
    if proc.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGTERM)
        try:
            proc.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=5)
    # workers that outlived their parent are still in our group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.popen.pid, signal.SIGKILL)


def uvicorn_argv(target: str, port: int, workers: int, *, factory: bool) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    return argv + (["--factory"] if factory else [])


def granian_argv(target: str, port: int, workers: int) -> list[str]:
    return [str(BIN / "granian"), "--interface", "asgi", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--no-access-log",
            "--log-level", "warning", target]


def fulema_env(*, database_url: str, port: int, sandbox_url: str, data_dir: Path,
               run_background: bool = True) -> dict[str, str]:
    """The measured platform: background jobs in process unless `run_background` is off
    (then a `fulema worker` runs them), only the bankpay channel, which
    lives in the shared sandbox process (see bench.sandbox_app). Rate limits are off: every
    phase drives one demo app from one address, and these phases measure the platform's cost,
    not the limiter's refusals."""
    return {"FULEMA_DATABASE_URL": database_url,
            "FULEMA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "FULEMA_BANKPAY_BASE_URL": f"{sandbox_url}/sandbox/bankpay",
            "FULEMA_ENABLED_CHANNELS": '["bankpay"]', "FULEMA_MOUNT_SANDBOX": "false",
            "FULEMA_DATA_DIR": str(data_dir), "FULEMA_ENVIRONMENT": "development",
            "FULEMA_SEED_DEMO": "true",
            "FULEMA_RUN_BACKGROUND": "true" if run_background else "false",
            "FULEMA_RATELIMIT_ENABLED": "false"}


BACKGROUNDS = ("process", "worker")


def start_fulema(kind: str, workers: int, *, database_url: str, sandbox_url: str,
                 data_dir: Path, log: Path, src: Path | None = None,
                 extra_env: dict[str, str] | None = None, background: str = "process") -> Proc:
    """`src`: run another checkout's code (an A/B run); `extra_env`: settings for this run;
    `background`: "process" runs the dispatcher, jobs and speaker hub in every API process
    (the embedded default), "worker" in one `fulema worker` beside API processes that serve
    requests only (production; `Proc.worker`)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background: one of {BACKGROUNDS}, not {background!r}")
    port = free_port()
    env = {**fulema_env(database_url=database_url, port=port, sandbox_url=sandbox_url,
                        data_dir=data_dir, run_background=background == "process"),
           **(extra_env or {})}
    if src is not None:
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{src}"
    if kind == "granian":
        argv = granian_argv("fulema.app:app_from_environment", port, workers)
    else:
        argv = uvicorn_argv("fulema.app:app_from_environment", port, workers, factory=True)
    api = start(f"fulema[{kind} x{workers}]", argv, env, log, f"http://127.0.0.1:{port}")
    if background == "worker":
        try:
            # after the API has seeded the demo merchant; the worker seeds nothing
            api.worker = start_worker(env, log.with_name(log.stem + "-worker.log"),
                                      database_url=database_url)
        except BaseException:
            stop(api)
            raise
    return api


def start_worker(env: dict[str, str], log: Path, *, database_url: str,
                 timeout: float = 60.0) -> Proc:
    """`fulema worker` with the API's environment; ready once it holds the lease of a job
    (its scheduler is up), read from the job table, which works for any version of the code
    (an A/B base has no log line to wait for)."""
    argv = [sys.executable, "-c", "from fulema.cli import app; app()", "worker"]
    proc = start("fulema worker", argv, {**env, "FULEMA_RUN_BACKGROUND": "true"}, log,
                 "worker:", wait=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"fulema worker exited with {proc.popen.returncode}:\n{tail}")
        if asyncio.run(_holds_a_lease(database_url, proc.popen.pid)):
            return proc
        time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"fulema worker took no job within {timeout:.0f} s; see {log}")


async def _holds_a_lease(database_url: str, pid: int) -> bool:
    """Whether the process `pid` owns a row of the job table (owners are host-pid-random)."""
    from sqlalchemy import text

    from fulema.core.db import Database

    db = Database(database_url + ("" if database_url.endswith("#nullpool") else "#nullpool"))
    try:
        async with db.engine.connect() as conn:
            found = await conn.scalar(text("SELECT count(*) FROM scheduled_jobs WHERE owner "
                                           "LIKE :o"), {"o": f"%-{pid}-%"})
    except Exception:  # the table is not there yet
        return False
    finally:
        await db.dispose()
    return bool(found)


def start_sandbox(*, data_dir: Path, log: Path, wait: bool = True) -> Proc:
    port = free_port()
    env = {"FULEMA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "FULEMA_DATA_DIR": str(data_dir),
           "FULEMA_ENABLED_CHANNELS": '["bankpay"]'}
    argv = uvicorn_argv("bench.sandbox_app:create_app", port, 1, factory=True)
    return start("bankpay sandbox", argv, env, log, f"http://127.0.0.1:{port}", wait=wait)


def start_receiver(*, log: Path, wait: bool = True) -> Proc:
    port = free_port()
    argv = uvicorn_argv("bench.receiver:app", port, 1, factory=False)
    return start("notify receiver", argv, {}, log, f"http://127.0.0.1:{port}", wait=wait)
