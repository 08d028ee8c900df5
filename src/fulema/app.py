"""Composition root: builds the FastAPI app from each context's router.

Everything that differs between the embedded default and production (database, channel
endpoints, whether the scheduler runs in this process) comes from the `Settings` tree it is
handed, so tests build the same app the server runs from a tree of their own. The tree is read
from the environment only at an entry point: `app_from_environment` (the ASGI factory that
`fulema serve` and the benchmark name), the CLI, the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI

from fulema.billing import jobs as billing_jobs
from fulema.billing import models as _billing_models  # noqa: F401 - registers tables
from fulema.billing.api import ops_router as billing_ops_router
from fulema.billing.api import router as billing_router
from fulema.billing.billers import BillerRegistry
from fulema.channels.ops_api import router as channels_ops_router
from fulema.channels.registry import build_channels
from fulema.core import audit as _audit_models  # noqa: F401 - registers tables
from fulema.core.config import Settings, get_settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Dispatcher
from fulema.core.web import RequestContextMiddleware, install_error_handlers
from fulema.gateway import models as _gateway_models  # noqa: F401 - registers tables
from fulema.merchants import models as _merchant_models  # noqa: F401 - registers tables
from fulema.merchants.api import router as merchants_router
from fulema.merchants.demo_seed import DEMO_PLATE
from fulema.messaging import jobs as messaging_jobs
from fulema.messaging import models as _messaging_models  # noqa: F401 - registers tables
from fulema.messaging.api import feed_router as speaker_feed_router
from fulema.messaging.api import router as messaging_router
from fulema.messaging.hub import SpeakerHub
from fulema.ops import bus
from fulema.ops.api import router as ops_router
from fulema.ops.bus import NatsPublisher
from fulema.ops.events_api import router as events_router
from fulema.payments.api import router as payments_router
from fulema.payments.callbacks import router as callbacks_router
from fulema.payments.service import Deps
from fulema.web.cashier import router as cashier_router
from fulema.web.docs_assets import install_docs
from fulema.web.home import home_router
from fulema.web.oauth import router as oauth_router

log = structlog.get_logger(__name__)


def app_from_environment() -> FastAPI:
    """The ASGI factory a server process starts from (`uvicorn fulema.app:app_from_environment
    --factory`): the one place a serving process builds the tree from FULEMA_* variables."""
    return create_app(get_settings())


def declared_consumers(settings: Settings) -> tuple[list[Consumer], NatsPublisher | None]:
    """Every event consumer of every context, so that each process running the dispatcher
    serves all of them. A context declares its consumers in its own module (`jobs.py`) and is
    listed here."""
    bus_consumers, publisher = bus.consumers(settings)
    return [*bus_consumers, *messaging_jobs.consumers(settings),
            *billing_jobs.consumers(settings)], publisher


def create_app(settings: Settings, *, db: Database | None = None,
               http: httpx.AsyncClient | None = None) -> FastAPI:
    settings.check_production()  # outside development: refuses, naming every variable to fix
    db = db or Database(settings.database_url)
    # Commits wake this process's own dispatcher in process; a NOTIFY (one statement per
    # publishing transaction) is needed only where the dispatcher runs elsewhere, i.e. API
    # processes of a deployment with separate `fulema worker`s (FULEMA_RUN_BACKGROUND=false).
    db.notify_other_processes = db.dialect == "postgresql" and not settings.run_background
    http = http or httpx.AsyncClient(timeout=settings.channel_timeout_seconds)
    consumers, publisher = declared_consumers(settings)
    dispatcher = Dispatcher(db, consumers, poll_seconds=settings.events_poll_seconds)
    channels = build_channels(settings, http)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if settings.seed_demo:
            from fulema.merchants.service import onboard_demo_merchant

            await onboard_demo_merchant(db, settings=settings)
        if settings.run_background:
            from fulema.ops.worker import background_tasks

            tasks = background_tasks(app)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if publisher is not None:
                await publisher.close()
            await http.aclose()
            await db.dispose()

    app = FastAPI(title="Fulema 付了码", version="0.1.0", lifespan=lifespan,
                  description="Aggregated payment platform: merchant API, cashier, operations.",
                  docs_url=None, redoc_url=None)  # install_docs serves them without a CDN
    app.state.settings = settings
    app.state.db = db
    app.state.http = http
    app.state.dispatcher = dispatcher
    app.state.channels = channels
    app.state.payments = Deps(db=db, settings=settings, channels=channels)
    app.state.speakers = SpeakerHub(db, settings)  # MQTT, or the log feed without a broker
    app.state.billers = BillerRegistry()  # biller adapters (sandbox billers in memory)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)

    for router in (ops_router, events_router, channels_ops_router, merchants_router,
                   payments_router, callbacks_router, cashier_router, oauth_router,
                   messaging_router, speaker_feed_router, billing_router, billing_ops_router):
        app.include_router(router)
    install_docs(app)
    app.include_router(home_router(demo_plate=DEMO_PLATE if settings.seed_demo else None))

    if settings.mount_sandbox:
        from fulema.sandboxes import mount_sandboxes

        mount_sandboxes(app, settings, http)
    return app
