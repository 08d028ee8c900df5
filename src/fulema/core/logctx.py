"""Who and what a log line is about, without passing it down every call: structlog context
variables, bound per request (request id, then the merchant app once the signature is good, then
the order's number and id as soon as they are known) and per event handled (event id, topic,
consumer, order id). `core.logs` merges them into every line, ours and the standard library's,
so an operator can follow one order through the logs: `grep ORD…` or `jq 'select(.order_id==…)'`.

Only identifiers go here (ids, numbers, names), never amounts of personal data or secrets; the
redaction in `core.logs` still applies to whatever is bound.

A scope starts empty and restores what was bound before it on exit: in a server each request
has its own task, but a test (or a worker) runs many requests or events in one task, and a
binding must not leak from one to the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog

_vars = structlog.contextvars


def bind(**values: str | None) -> None:
    """Add identifiers to the current scope (None and empty values are skipped)."""
    kept = {k: v for k, v in values.items() if v}
    if kept:
        _vars.bind_contextvars(**kept)


@contextmanager
def scope(**values: str | None) -> Iterator[None]:
    """A fresh log context for one request or one event, restored to the outer one on exit."""
    saved = _vars.get_contextvars()
    _vars.clear_contextvars()
    bind(**values)
    try:
        yield
    finally:
        _vars.clear_contextvars()
        if saved:
            _vars.bind_contextvars(**saved)
