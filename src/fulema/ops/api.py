"""Health and metrics for load balancers and monitoring."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.web import bearer_matches, error_responses, get_db, get_settings, json_response
from fulema.ops.monitoring import readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness and database reachability")
async def healthz(request: Request) -> Response:
    db = get_db(request)
    async with db.transaction() as s:
        await s.execute(text("SELECT 1"))
    return json_response({"status": "ok", "database": db.dialect})


@router.get("/readyz", summary="Readiness: database, Redis and the outbox dispatcher")
async def readyz(request: Request) -> Response:
    """503 while this process should get no traffic (a load balancer takes it out)."""
    settings = get_settings(request)
    ready, checks = await readiness(get_db(request), redis_url=settings.ratelimit.redis_url,
                                    max_unsequenced_seconds=settings.ready_max_outbox_wait_seconds)
    return json_response({"status": "ready" if ready else "not ready", "checks": checks},
                         status_code=200 if ready else 503)


@router.get("/ping", summary="Bare endpoint (benchmark baseline): no database, no auth")
async def ping() -> Response:
    return json_response({"pong": True})


@router.get("/metrics", summary="Prometheus metrics",
            responses=error_responses(ErrorCode.UNAUTHORIZED))
async def metrics(request: Request) -> Response:
    """With FULEMA_METRICS_TOKEN set, only `Authorization: Bearer <token>` is answered: the
    figures name channels, merchants' volumes and error rates."""
    token = get_settings(request).metrics_token
    if token and not bearer_matches(request, token):
        raise FulemaError(ErrorCode.UNAUTHORIZED, "metrics need the metrics bearer token")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
