"""Operators' view of channel endpoints: is each breaker closed, half-open or open, and why.

State is per process (see docs/channels/routing.md): behind a load balancer this answers for
the process that served the request; Prometheus' `fulema_channel_breaker_state` has them all.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fulema.channels.registry import ChannelRegistry
from fulema.channels.routing import GuardedChannel
from fulema.core.web import json_response, require_role

router = APIRouter(tags=["operations"])


@router.get("/ops/v1/channels", summary="Circuit breaker state of every enabled channel endpoint",
            dependencies=[Depends(require_role("admin"))])
async def channel_health(request: Request) -> Response:
    registry: ChannelRegistry = request.app.state.channels
    channels: list[dict[str, Any]] = []
    for name, channel in registry.channels.items():
        if isinstance(channel, GuardedChannel):
            channels.append({"channel": name.value, "status": "guarded",
                             "endpoints": channel.health()})
        else:
            channels.append({"channel": name.value, "status": "unguarded", "endpoints": []})
    return json_response({"channels": channels})
