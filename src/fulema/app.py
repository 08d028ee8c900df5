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
import fnmatch
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import structlog
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from fulema.billing import jobs as billing_jobs
from fulema.billing import models as _billing_models  # noqa: F401 - registers tables
from fulema.billing.api import ops_router as billing_ops_router
from fulema.billing.api import router as billing_router
from fulema.billing.billers import BillerRegistry
from fulema.channels.onboarding import build_onboarding
from fulema.channels.ops_api import router as channels_ops_router
from fulema.channels.registry import build_channels
from fulema.core import approvals as _approval_models  # noqa: F401 - registers tables
from fulema.core import audit as _audit_models  # registers tables; the hash choice
from fulema.core import passwords, vault
from fulema.core.approvals import ApprovalAction
from fulema.core.config import Settings, get_settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Dispatcher
from fulema.core.heap import freeze_startup_heap
from fulema.core.logs import configure_logging
from fulema.core.web import RequestContextMiddleware, install_error_handlers
from fulema.gateway import models as _gateway_models  # noqa: F401 - registers tables
from fulema.gateway.protection import Protection, ProtectionMiddleware, RecentAnswers
from fulema.gateway.ratelimit import BucketStore, RedisBuckets
from fulema.ledger import jobs as ledger_jobs
from fulema.ledger import models as _ledger_models  # noqa: F401 - registers tables
from fulema.ledger.api import router as ledger_router
from fulema.marketing import jobs as marketing_jobs
from fulema.marketing import models as _marketing_models  # noqa: F401 - registers tables
from fulema.marketing.api import ops_router as marketing_ops_router
from fulema.marketing.api import router as marketing_router
from fulema.merchants import models as _merchant_models  # noqa: F401 - registers tables
from fulema.merchants.api import router as merchants_router
from fulema.merchants.demo_seed import DEMO_PLATE
from fulema.merchants.service import approval_actions as merchant_approval_actions
from fulema.messaging import jobs as messaging_jobs
from fulema.messaging import models as _messaging_models  # noqa: F401 - registers tables
from fulema.messaging import subscriptions as message_subscriptions
from fulema.messaging.api import feed_router as speaker_feed_router
from fulema.messaging.api import router as messaging_router
from fulema.messaging.delivery import build_deliverers
from fulema.messaging.delivery_api import merchant_router as messaging_merchant_router
from fulema.messaging.delivery_api import ops_router as messaging_delivery_router
from fulema.messaging.hub import SpeakerHub
from fulema.messaging.notices_api import merchant_router as notices_merchant_router
from fulema.onboarding import jobs as onboarding_jobs
from fulema.onboarding import models as _onboarding_models  # noqa: F401 - registers tables
from fulema.onboarding.api import merchant_router as onboarding_merchant_router
from fulema.onboarding.api import router as onboarding_ops_router
from fulema.operators import models as _operator_models  # noqa: F401 - registers tables
from fulema.operators.api import router as operators_router
from fulema.operators.four_eyes import approval_actions as operator_approval_actions
from fulema.operators.service import Directory as OperatorDirectory
from fulema.ops import bus, monitoring, scheduler, wakeups  # scheduler: tables; leases at exit
from fulema.ops.api import router as ops_router
from fulema.ops.bus import NatsPublisher
from fulema.ops.events_api import router as events_router
from fulema.ops.monitoring import RequestMetricsMiddleware, count_refusal
from fulema.payments.api import router as payments_router
from fulema.payments.callbacks import router as callbacks_router
from fulema.payments.service import Deps
from fulema.points import jobs as points_jobs
from fulema.points import models as _points_models  # noqa: F401 - registers tables
from fulema.points.api import router as points_ops_router
from fulema.reconciliation import models as _recon_models  # noqa: F401 - registers tables
from fulema.reconciliation.api import router as reconciliation_router
from fulema.risk import jobs as risk_jobs
from fulema.risk import models as _risk_models  # noqa: F401 - registers tables
from fulema.risk.api import router as risk_router
from fulema.settlement import models as _settlement_models  # noqa: F401 - registers tables
from fulema.settlement.api import bills_router
from fulema.settlement.api import router as settlement_router
from fulema.settlement.service import BankTransferPayouts, PayoutAdapter
from fulema.web import models as _web_models  # noqa: F401 - registers tables (sessions)
from fulema.web.cashier import router as cashier_router
from fulema.web.console import router as console_router
from fulema.web.docs_assets import install_docs
from fulema.web.home import home_router
from fulema.web.oauth import router as oauth_router
from fulema.web.portal.router import router as portal_router
from fulema.web.security_headers import SecurityHeadersMiddleware

log = structlog.get_logger(__name__)


def app_from_environment() -> FastAPI:
    """The ASGI factory a server process starts from (`uvicorn fulema.app:app_from_environment
    --factory`): the one place a serving process builds the tree from FULEMA_* variables."""
    settings = get_settings()
    configure_logging(settings)  # core/logs.py: no locals in tracebacks, secrets redacted
    return create_app(settings)


def declared_consumers(settings: Settings) -> tuple[list[Consumer], NatsPublisher | None]:
    """Every event consumer of every context, so that each process running the dispatcher
    serves all of them. A context declares its consumers in its own module (`jobs.py`) and is
    listed here."""
    bus_consumers, publisher = bus.consumers(settings)
    return [*bus_consumers, *monitoring.consumers(), *ledger_jobs.consumers(settings),
            *marketing_jobs.consumers(settings), *points_jobs.consumers(settings),
            *risk_jobs.consumers(), *messaging_jobs.consumers(settings),
            *billing_jobs.consumers(settings),
            *onboarding_jobs.consumers(settings)], publisher


def served_consumers(consumers: list[Consumer], patterns: list[str]) -> list[Consumer]:
    """The consumers this process serves (FULEMA_WORKER_CONSUMERS): those whose names match a
    pattern (fnmatch) and no pattern written `!pattern`; with no positive pattern, all but the
    excluded. Each consumer's position is its own row, so workers that split the consumers
    between them (`["messaging.*"]` and `["!messaging.*"]`) never serve one twice; every
    worker numbers events, under the stream's lock."""
    wanted = [p for p in patterns if not p.startswith("!")]
    unwanted = [p[1:] for p in patterns if p.startswith("!")]
    return [c for c in consumers
            if (not wanted or any(fnmatch.fnmatchcase(c.name, p) for p in wanted))
            and not any(fnmatch.fnmatchcase(c.name, p) for p in unwanted)]


def _bucket_store(settings: Settings) -> BucketStore | None:
    """Redis buckets when configured (every API process shares the limits), else in process."""
    if not settings.ratelimit.redis_url:
        return None
    from redis.asyncio import Redis

    return RedisBuckets(Redis.from_url(settings.ratelimit.redis_url),
                        prefix=settings.ratelimit.redis_prefix)


def declared_approval_actions() -> dict[str, ApprovalAction]:
    """Every four-eyes action of every context (`core.approvals`), by kind: what an approval
    runs. A context declares its own and is listed here."""
    return {a.kind: a for a in [*merchant_approval_actions(), *operator_approval_actions()]}


def build_payouts(settings: Settings) -> PayoutAdapter:
    """The bank transfer service settlement pays merchants through. Only the sandbox exists
    today (docs/settlement.md); a core-banking client implements the same two calls."""
    from fulema.sandbox.banktransfer import SandboxBank

    return BankTransferPayouts(SandboxBank())


def create_app(settings: Settings, *, db: Database | None = None,
               http: httpx.AsyncClient | None = None,
               payouts: PayoutAdapter | None = None) -> FastAPI:
    settings.check_production()  # outside development: refuses, naming every variable to fix
    vault.install(settings.keyring())  # what the sealed columns open and seal with
    _audit_models.use_algorithm(settings.audit_hash_algorithm)
    passwords.configure(settings)  # the argon2 cost of page logins
    db = db or Database(settings.database_url, pool_size=settings.db_pool_size,
                        max_overflow=settings.db_max_overflow)
    # Commits wake this process's own dispatcher in process; a NOTIFY is needed only where
    # the dispatcher runs elsewhere, i.e. processes of a deployment with separate `fulema
    # worker`s (FULEMA_RUN_BACKGROUND=false): one statement in each publishing transaction
    # for a process without a lifespan (a CLI command); a served API process replaces it
    # with one NOTIFY per burst of commits, sent after them (the lifespan below).
    db.notify_other_processes = db.dialect == "postgresql" and not settings.run_background
    http = http or httpx.AsyncClient(timeout=settings.channel_timeout_seconds)
    consumers, publisher = declared_consumers(settings)
    dispatcher = Dispatcher(db, served_consumers(consumers, settings.worker_consumers),
                            poll_seconds=settings.events_poll_seconds,
                            linger_seconds=settings.events_linger_seconds)
    channels = build_channels(settings, http)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if settings.seed_demo:
            from fulema.merchants.service import onboard_demo_merchant

            demo = await onboard_demo_merchant(db, settings=settings)
            from fulema.marketing.service import seed_demo_marketing

            # the cashier of the demo plate shows a discount out of the box (docs/marketing.md)
            await seed_demo_marketing(db, merchant_id=demo.merchant_id)
            from fulema.operators.passwords import seed_demo_operator

            await seed_demo_operator(db, settings=settings)  # the console's demo login
            from fulema.billing.demo_seed import seed_demo_billing

            await seed_demo_billing(db, settings=settings)  # a water company and a charity
        forwarder: asyncio.Task[None] | None = None
        if settings.run_background:
            from fulema.ops.worker import background_tasks

            tasks = background_tasks(app)
        elif db.dialect == "postgresql":
            # an API process beside `fulema worker`s: its commits reach them as one NOTIFY
            # per burst, sent after the commit (ops/wakeups.py), not one in every transaction
            db.notify_other_processes = False
            forwarder = asyncio.create_task(wakeups.forward_commits(db))
        # what `fulema worker` watches: a loop that dies ends the worker (its supervisor
        # restarts it) instead of leaving a process that holds leases and does nothing
        app.state.background = tasks
        if settings.gc_freeze:
            freeze_startup_heap()  # full collections then skip what startup built
        try:
            yield
        finally:
            ending = [*tasks, *([forwarder] if forwarder else [])]
            for task in ending:
                task.cancel()
            for task in ending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if tasks:
                with contextlib.suppress(Exception):  # shutting down: the leases run out anyway
                    await scheduler.release_held(db)
            if publisher is not None:
                await publisher.close()
            if isinstance(protection.store, RedisBuckets):
                await protection.store.close()
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
    app.state.onboarding_ports = build_onboarding(settings, http)  # sub-merchant registration
    app.state.payouts = payouts or build_payouts(settings)
    # The merchant's webhook switch lives in the message center; the payment core asks it
    # through its port (payments/deps.py), never importing messaging.
    app.state.payments = Deps(db=db, settings=settings, channels=channels,
                              webhook_switch=message_subscriptions.webhook_enabled)
    app.state.operator_directory = OperatorDirectory(db)  # core.web.OperatorDirectory
    app.state.approval_actions = declared_approval_actions()
    app.state.speakers = SpeakerHub(db, settings)  # MQTT, or the log feed without a broker
    app.state.deliverers = build_deliverers(settings, http)  # SMS and push providers
    app.state.billers = BillerRegistry()  # biller adapters (sandbox billers in memory)
    install_error_handlers(app)
    protection = Protection(settings.ratelimit, _bucket_store(settings))
    app.state.protection = protection
    app.state.recent_answers = RecentAnswers()
    app.add_middleware(RequestMetricsMiddleware)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)  # CSP on pages, nosniff, DENY framing
    # Added last, so it runs first: a refusal costs the limiter only (it adds the request id,
    # the security headers and its count in the request metrics itself).
    app.add_middleware(ProtectionMiddleware, protection=protection, on_refuse=count_refusal)

    # The merchant API and the channels' callbacks first: a router finds a request's route
    # by trying each route in turn (twice, in FastAPI's included routers), and these are the
    # hot paths; with the operations routers before them, matching cost a merchant request
    # ~0.2 ms. The order never changes which route a path reaches
    # (tests/web/test_route_order.py).
    for router in (payments_router, callbacks_router,
                   ops_router, events_router, channels_ops_router, merchants_router,
                   operators_router, cashier_router, oauth_router,
                   reconciliation_router, ledger_router, settlement_router, bills_router,
                   marketing_router, marketing_ops_router, points_ops_router,
                   risk_router,
                   messaging_router, messaging_delivery_router, messaging_merchant_router,
                   notices_merchant_router,
                   speaker_feed_router, billing_router, billing_ops_router,
                   onboarding_ops_router, onboarding_merchant_router):
        app.include_router(router)
    app.include_router(console_router)  # /console: the operations console's pages
    install_docs(app)
    # the pages' own CSS and scripts, served from here: no CDN inside a bank's network
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"),
              name="static")
    app.include_router(portal_router)  # the merchant portal, /portal (docs/portal.md)
    app.include_router(home_router(demo_plate=DEMO_PLATE if settings.seed_demo else None))

    if settings.mount_sandbox:
        from fulema.sandboxes import mount_sandboxes

        mount_sandboxes(app, settings, http)
    return app
