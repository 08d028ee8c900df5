"""Serve an ASGI app on a free local port from a thread, for published client libraries
that speak plain HTTP with `requests`/`http.client` (they cannot use an ASGI transport)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn


def free_port() -> int:
    """A port free now; another process may take it before it is used (bound_socket does not
    have that race, so servers this module starts use it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bound_socket() -> socket.socket:
    """A socket already bound to a free local port, for a server to listen on: the port is
    ours from the moment it is chosen, where `free_port` leaves a gap in which another of the
    suite's processes can take it (a CI run once lost a module of browser tests that way, or
    to a slow start; `serve` now tells the two apart)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


# A busy CI machine (every xdist worker running tests at once) has taken more than 10 s to
# run an app's lifespan (a demo seed on SQLite); a server that never comes up still fails,
# only later.
START_SECONDS = 60.0


@contextlib.contextmanager
def serve(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """http://127.0.0.1:PORT while the block runs; the server's lifespan runs too."""
    sock = sock or bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    started = time.monotonic()
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("test server stopped before it started (see its log above)")
        if time.monotonic() - started > START_SECONDS:
            raise RuntimeError(f"test server did not start within {START_SECONDS:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class Inbox:
    """A plain HTTP endpoint that records what is POSTed to it (a merchant's notify_url)
    and answers `answer` (WeChat wants 200/204, Alipay the text `success`)."""

    def __init__(self, answer: bytes = b"success") -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                inbox.received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int = 1, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} callbacks, got {len(self.received)}")
            time.sleep(0.02)
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
