"""Health and metrics for load balancers and monitoring."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from fulema.core.web import get_db, json_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness and database reachability")
async def healthz(request: Request) -> Response:
    db = get_db(request)
    async with db.transaction() as s:
        await s.execute(text("SELECT 1"))
    return json_response({"status": "ok", "database": db.dialect})


@router.get("/ping", summary="Bare endpoint (benchmark baseline): no database, no auth")
async def ping() -> Response:
    return json_response({"pong": True})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
