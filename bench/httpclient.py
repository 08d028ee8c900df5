"""A minimal HTTP/1.1 keep-alive client on raw asyncio streams, for the load generator only.

Hand-written instead of httpx on purpose: on a 2-core machine the generator shares the CPU with
the server, and httpx spends several times more CPU per request than this (pool bookkeeping,
header models, URL objects). Every microsecond the generator spends is one the server does not
get, so the generator's own ceiling is measured and printed (the `/ping` scenario). It speaks
only what uvicorn and granian answer: Content-Length or chunked bodies, keep-alive, to
127.0.0.1. It is not a general HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass


class HttpError(Exception):
    """Transport failure (connection refused or reset, malformed answer, timeout)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


# uvicorn closes a keep-alive connection idle for 5 s (granian similarly); reusing one the
# server is closing fails mid-request. Connections idle longer than this are not reused.
MAX_IDLE_SECONDS = 4.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last_used = time.monotonic()

    async def request(self, head: bytes, body: bytes) -> tuple[Response, bool]:
        """Send one request; returns the response and whether the connection may be reused."""
        self.writer.write(head + body)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            data = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
        else:
            data = await self.reader.read()
        keep = headers.get("connection", "").lower() != "close"
        return Response(int(parts[1]), data), keep

    async def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(out)
            out += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Pool:
    """At most `size` keep-alive connections to one host:port; callers queue for a free one.

    Last in, first out: a request takes the connection used most recently and opens a new one
    only when every open one is busy, as a client's pool does. (First in, first out handed out
    every empty slot before any returned connection, so the first `size` requests of a phase
    each paid a TCP connect and the server an accept: an open-loop phase at a low rate measured
    connection setup, and a burst began with hundreds of connects.)"""

    def __init__(self, host: str, port: int, size: int, *, timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: asyncio.Queue[_Connection | None] = asyncio.LifoQueue()
        for _ in range(size):
            self._idle.put_nowait(None)  # a slot without a connection yet: opened lazily
        self._host_header = f"Host: {host}:{port}\r\n"

    async def request(self, method: str, path: str, *, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> Response:
        head = [f"{method} {path} HTTP/1.1\r\n", self._host_header]
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}\r\n")
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        encoded = "".join(head).encode("latin-1")
        conn = await self._idle.get()
        if conn is not None and time.monotonic() - conn.last_used > MAX_IDLE_SECONDS:
            conn.close()
            conn = None
        try:
            if conn is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout)
                conn = _Connection(reader, writer)
            async with asyncio.timeout(self.timeout):
                response, keep = await conn.request(encoded, body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError) as exc:
            if conn is not None:
                conn.close()
            self._idle.put_nowait(None)
            raise HttpError(type(exc).__name__) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            self._idle.put_nowait(None)
            raise
        if keep:
            conn.last_used = time.monotonic()
            self._idle.put_nowait(conn)
        else:
            conn.close()
            self._idle.put_nowait(None)
        return response

    async def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                conn.close()
