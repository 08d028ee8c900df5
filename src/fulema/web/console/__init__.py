"""The operations console (`/console`): server-rendered pages for the bank's operators.
See docs/console.md."""

from __future__ import annotations

from fastapi import APIRouter

from fulema.web.console import auth, merchants, operations

router = APIRouter(include_in_schema=False)
for _part in (auth.router, merchants.router, operations.router):
    router.include_router(_part)
