"""The portal's one router, for the composition root (app.py)."""

from __future__ import annotations

from fastapi import APIRouter

from fulema.web.portal import account, login, notices, sales

router = APIRouter()
for part in (login.router, sales.router, account.router, notices.router):
    router.include_router(part)
