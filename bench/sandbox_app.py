"""The bankpay channel sandbox as its own single process, shared by every Fulema worker.

The sandbox keeps its orders and payers in memory. Mounted inside a Fulema server with N
workers, the order created through worker A (its channel call goes back over the socket and
may land on worker B) and the payer's scan (worker A again) would see different sandboxes. So
the harness runs the sandbox once, here, and points Fulema at it with
FULEMA_BANKPAY_BASE_URL, as production points it at the bank. Its callbacks go to the
notify_url Fulema puts in each order (FULEMA_PUBLIC_BASE_URL of the measured server).

Run: `uvicorn bench.sandbox_app:create_app --factory --port P` with FULEMA_PUBLIC_BASE_URL
set to this process's own address (the QR links it issues point there).
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from fulema.core.config import Settings
from fulema.sandboxes import sandbox_app


def create_app() -> FastAPI:
    settings = Settings()  # an entry point: this process's tree, built once
    http = httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=200))
    app = FastAPI(title="bench bankpay sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ping")
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    app.mount("/sandbox/bankpay", sandbox_app("bankpay", settings, http))
    return app
