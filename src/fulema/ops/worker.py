"""The scheduler: outbox dispatch, merchant notifications, order polling/expiry, refund
queries and nonce clean-up. `fulema serve` runs it in process on the embedded default;
production runs it as `fulema worker` processes (all loops are safe to run in several
processes at once: every job claims its row with a conditional update)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from fastapi import FastAPI

from fulema.billing import jobs as billing_jobs
from fulema.core.events import admin as events_admin
from fulema.core.signal import Signal
from fulema.gateway.service import purge_nonces
from fulema.payments import jobs, notifications, refunds
from fulema.payments import service as payments

log = structlog.get_logger(__name__)
BUSY_BATCH = 20


async def _every(seconds: float, name: str, job: Callable[[], Awaitable[object]],
                 wake: Signal | None = None) -> None:
    """Run `job` every `seconds`, or as soon as `wake` is set; straight away again while it
    reports a full batch of work (a backlog drains at full speed instead of one batch per
    period). A failing round is logged and the loop goes on: a scheduler must outlive one
    bad round."""
    while True:
        busy = False
        seen = wake.generation if wake is not None else 0
        try:
            done = await job()
            busy = isinstance(done, int) and done >= BUSY_BATCH
        except Exception as exc:
            log.error("job.failed", job=name, error=repr(exc))
        if busy:
            await asyncio.sleep(0)
        elif wake is None:
            await asyncio.sleep(seconds)
        else:
            await wake.wait(seen, seconds)


def background_tasks(app: FastAPI) -> list[asyncio.Task[None]]:
    deps: payments.Deps = app.state.payments
    http = app.state.http
    dispatcher = app.state.dispatcher
    return [
        asyncio.create_task(dispatcher.run_forever()),
        # The notification loop wakes when a transaction that published an event commits (a
        # payment's notification is written in that transaction), so a merchant hears of a
        # payment within milliseconds rather than at the next half-second poll.
        asyncio.create_task(_every(0.5, "notify", lambda: notifications.deliver_due(
            deps.db, deps.settings, http), wake=deps.db.committed)),
        asyncio.create_task(_every(1.0, "orders", lambda: jobs.run_order_jobs(deps))),
        asyncio.create_task(_every(5.0, "refunds", lambda: refunds.run_refund_jobs(deps))),
        asyncio.create_task(_every(3600.0, "events.archive", lambda: events_admin.archive(
            deps.db, retention=timedelta(days=deps.settings.events_retention_days)))),
        asyncio.create_task(_every(300.0, "nonces", lambda: purge_nonces(deps.db,
                                                                         deps.settings))),
        # Cloud speakers: sends announcements as soon as they are recorded, reads acks and
        # hellos, resends what is not acknowledged (messaging/hub.py).
        asyncio.create_task(app.state.speakers.run_forever()),
        asyncio.create_task(_every(2.0, "billing.writeoffs", lambda: billing_jobs.run_writeoffs(
            deps, app.state.billers))),
    ]


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
