"""The order routers are included in decides only how fast a request finds its route (the
merchant API is matched first: it is the hot path, docs/performance.md), never which route it
finds. For every route of the app, a path made from its own template must reach that route's
endpoint, with the mounted sandboxes too (the embedded default), so a reordering that let
one router's route shadow another's fails here."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute, Match

from fulema.app import create_app
from fulema.core.config import Settings
from fulema.core.db import Database

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


def _flat(routes: list[BaseRoute]) -> list[Any]:
    """Every route of the app, included routers opened (FastAPI keeps them as one entry)."""
    out: list[Any] = []
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        out += _flat(candidates()) if candidates is not None else [route]
    return out


def _first(routes: list[BaseRoute], method: str, path: str) -> Any:
    """The endpoint a request would reach: the first route that matches in full, followed
    into an included router the way FastAPI's router does when it handles the request."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [],
             "query_string": b""}
    for route in routes:
        match, _child = route.matches(scope)
        if match != Match.FULL:
            continue
        while hasattr(route, "_match"):  # FastAPI's included router: which route inside
            match, _child, route, _context = route._match(scope)
        return getattr(route, "endpoint", None)
    return None


async def test_every_route_is_reached_by_its_own_path(settings: Settings,
                                                      sqlite_db: Database) -> None:
    app = create_app(settings.model_copy(update={"mount_sandbox": True}), db=sqlite_db)
    checked = 0
    for route in _flat(app.router.routes):
        methods = getattr(route, "methods", None)
        endpoint = getattr(route, "endpoint", None)
        if not methods or endpoint is None:
            continue  # mounts (static files, a sandbox's own app): matched by prefix
        path = _PARAM.sub("x1", route.path)
        for method in sorted(methods - {"HEAD"}):
            assert _first(app.router.routes, method, path) is endpoint, (method, route.path)
            checked += 1
    assert checked > 200  # the merchant API, operations, pages and callbacks all counted


def test_merchant_api_is_matched_first(settings: Settings) -> None:
    """The merchant API's routers come before the others: a create or query is matched after
    a handful of routes, not after every operations route (measured in docs/performance.md)."""
    app = create_app(settings)
    flat = [r for r in _flat(app.router.routes) if getattr(r, "methods", None)]
    paths = [r.path for r in flat[:40]]
    assert "/api/v1/orders" in paths
    assert "/api/v1/orders/{order_id}" in paths
