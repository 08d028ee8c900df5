"""Background work: the outbox dispatcher and the scheduled jobs (merchant notifications,
order polling and expiry, refund queries, archive, nonce clean-up, monitoring samples, the
daily reconciliation) and the speaker hub.
`fulema serve` runs them in process on the embedded default; production runs them in
`fulema worker` processes (`run_worker`) beside API processes started with
FULEMA_RUN_BACKGROUND=false, which then serve requests only (docs/scaling.md: N API processes
each running the background paid its idle cost N times and crowded their connection pools).
Each job runs in one process at a time, under the lease of its row in the job table
(ops/scheduler.py); `run_all_once` is the tests' and the demo's way to drive one round of
everything without leases."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta

import httpx
import structlog
from fastapi import FastAPI

from fulema.billing import jobs as billing_jobs
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import admin as events_admin
from fulema.gateway.service import purge_nonces
from fulema.marketing import service as marketing
from fulema.messaging import fanout
from fulema.messaging.speakers import CONSUMER as SPEAKER_CONSUMER
from fulema.onboarding import jobs as onboarding_jobs
from fulema.ops import monitoring, scheduler
from fulema.ops.scheduler import Job
from fulema.payments import jobs, notifications, refunds
from fulema.payments import service as payments
from fulema.points import service as points
from fulema.reconciliation.jobs import reconcile_due
from fulema.risk import jobs as risk_jobs
from fulema.settlement import jobs as settlement_jobs

log = structlog.get_logger(__name__)


def declared_jobs(app: FastAPI) -> list[Job]:
    """Every scheduled job of every context: what `fulema worker` (and the embedded server)
    runs, one process at a time per job (ops/scheduler.py), and what `fulema jobs run` names."""
    deps: payments.Deps = app.state.payments
    http = app.state.http
    return [
        # The notification loop wakes when a transaction that published an event commits (a
        # payment's notification is written in that transaction), so a merchant hears of a
        # payment within milliseconds rather than at the next half-second poll.
        Job("notify", 0.5, lambda: notifications.deliver_due(deps.db, deps.settings, http),
            wake=deps.db.committed),
        # SMS and app push: woken like the notifications, retried on their own schedule.
        Job("messaging.deliveries", 1.0, lambda: fanout.deliver_due(
            deps.db, deps.settings, app.state.deliverers), wake=deps.db.committed),
        Job("orders", 1.0, lambda: jobs.run_order_jobs(deps)),
        Job("refunds", 5.0, lambda: refunds.run_refund_jobs(deps)),
        Job("events.archive", 3600.0, lambda: events_admin.archive(
            deps.db, retention=timedelta(days=deps.settings.events_retention_days))),
        Job("nonces", 300.0, lambda: purge_nonces(deps.db, deps.settings)),
        Job("monitoring.sample", 15.0, lambda: monitoring.sample_backlogs(deps.db)),
        Job("reconciliation", 600.0, lambda: reconcile_due(deps)),
        # Settle every closed trade date once (a no-op until the next cut-off passes), and
        # send, ask about or retry the payouts that are due.
        Job("settlement", 600.0, lambda: settlement_jobs.settle_due(deps.db, deps.settings)),
        Job("payouts", 30.0, lambda: settlement_jobs.send_payouts(
            deps.db, deps.settings, app.state.payouts)),
        Job("points.expire", 300.0, lambda: points.expire_lots(deps.db)),
        Job("coupons.expire", 300.0, lambda: marketing.expire_coupons(deps.db)),
        Job("risk.scoring", 600.0, lambda: risk_jobs.score_daily_if_due(deps.db)),
        Job("billing.writeoffs", 2.0,
            lambda: billing_jobs.run_writeoffs(deps, app.state.billers)),
        # Sub-merchant onboarding: send pending applications, ask about those under review.
        Job("onboarding", 5.0, lambda: onboarding_jobs.run_due(
            deps.db, deps.settings, app.state.onboarding_ports)),
    ]


def background_tasks(app: FastAPI) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(app.state.dispatcher.run_forever()),
            asyncio.create_task(_scheduler(app)),
            # Cloud speakers: sends announcements as soon as they are recorded, reads acks and
            # hellos, resends what is not acknowledged (messaging/hub.py), in the process that
            # serves the speaker consumer (all of them, unless FULEMA_WORKER_CONSUMERS splits).
            *([asyncio.create_task(app.state.speakers.run_forever())]
              if SPEAKER_CONSUMER in app.state.dispatcher.consumers else [])]


async def run_worker(settings: Settings, *, db: Database | None = None,
                     http: httpx.AsyncClient | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """`fulema worker`: the app's background without its HTTP side. It enters the app's own
    lifespan with the background on (so the worker runs exactly what `fulema serve` would run
    in process, and shuts down the same way: loops cancelled, job leases released, the
    database and clients closed) and stays until `stop` is set, SIGTERM or SIGINT arrives, or
    one of its loops dies (then it raises, so the supervisor restarts the worker rather than
    keep a process that holds leases and does nothing).

    This process runs the dispatcher, so its own commits wake it in process: no NOTIFY for
    them (`run_background=True`); API processes started with FULEMA_RUN_BACKGROUND=false NOTIFY
    on PostgreSQL, and it LISTENs (on MySQL-protocol databases it polls every
    FULEMA_EVENTS_POLL_SECONDS)."""
    from fulema.app import create_app  # the composition root builds what this process runs

    settings = settings.model_copy(update={"run_background": True, "seed_demo": False})
    app = create_app(settings, db=db, http=http)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with app.router.lifespan_context(app):
            tasks: list[asyncio.Task[None]] = app.state.background
            log.info("worker.started", consumers=len(app.state.dispatcher.consumers),
                     jobs=len(declared_jobs(app)), loops=len(tasks))
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            died = [t for t in tasks if t.done() and not t.cancelled()]
            for task in died:
                error = task.exception()
                log.error("worker.loop_died", loop=task.get_name(),
                          error=type(error).__name__ if error else "returned")
            if died:
                raise RuntimeError(f"{len(died)} background loop(s) ended; see worker.loop_died")
            log.info("worker.stopping")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _scheduler(app: FastAPI) -> None:
    db = app.state.payments.db
    declared = declared_jobs(app)
    await scheduler.ensure_rows(db, declared)
    loops = [scheduler.run_frequent(db, job, _observed) if job.frequent
             else scheduler.run_slow(db, job, _observed) for job in declared]
    await asyncio.gather(*loops)


def _observed(name: str, ok: bool) -> None:
    monitoring.job_finished(name, ok=ok)


async def run_all_once(app: FastAPI) -> None:
    """One round of every job; the demo and the tests drive time with this."""
    deps: payments.Deps = app.state.payments
    await app.state.dispatcher.drain()
    await jobs.run_order_jobs(deps)
    await refunds.run_refund_jobs(deps)
    await app.state.dispatcher.drain()
    await app.state.speakers.deliver_due()
    await billing_jobs.run_writeoffs(deps, app.state.billers)
    await app.state.dispatcher.drain()
    await notifications.deliver_due(deps.db, deps.settings, app.state.http)
    await fanout.deliver_due(deps.db, deps.settings, app.state.deliverers)
    await monitoring.sample_backlogs(deps.db)
    await settlement_jobs.settle_due(deps.db, deps.settings)
    await settlement_jobs.send_payouts(deps.db, deps.settings, app.state.payouts)
    await points.expire_lots(deps.db)
    await marketing.expire_coupons(deps.db)
    await onboarding_jobs.run_due(deps.db, deps.settings, app.state.onboarding_ports)
