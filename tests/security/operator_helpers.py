"""Shared by the operator and audit tests: an app on the test database and operators of
chosen roles with their own tokens (made through the service, as `fulema operator create`
does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from fulema.app import create_app
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.operators import service
from tests.merchants.factories import application

BOOTSTRAP = {"Authorization": "Bearer test-operator"}


def ops_app(db: Database, settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"mount_sandbox": False, "enabled_channels": []}),
                      db=db)


@asynccontextmanager
async def ops_client(db: Database, settings: Settings,
                     app: FastAPI | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials: each call says who it is (`as_(token)`)."""
    app = app or ops_app(db, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        yield client


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def operator(db: Database, name: str, *roles: str) -> dict[str, str]:
    """Creates `name` with `roles`; answers the headers that act as it."""
    await service.create_operator(db, name=name, display_name=name.title(), roles=list(roles),
                                  actor="test-setup")
    issued = await service.issue_token(db, name=name, label="test", actor="test-setup")
    return as_(issued.token)


async def active_merchant(http: httpx.AsyncClient) -> str:
    resp = await http.post("/ops/v1/merchants", json=application(), headers=BOOTSTRAP)
    assert resp.status_code == 201, resp.text
    mid: str = resp.json()["id"]
    for action in ("approve", "activate"):
        r = await http.post(f"/ops/v1/merchants/{mid}/{action}", headers=BOOTSTRAP)
        assert r.status_code == 200, r.text
    return mid
