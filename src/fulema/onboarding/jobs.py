"""Onboarding's event consumer and its scheduled job.

`onboarding.sync` (consumer): when a merchant is activated, or its profile changes (settlement
account, the channel fields of `onboarding.set_supplement`, a corrected resubmission, an
unfreeze), it records the registrations the new profile needs, one per channel whose
registration is missing or carries an older profile. Idempotent by event id and by profile
fingerprint. It sends nothing itself: a handler runs inside a transaction, and a channel call
does not belong there.

`onboarding` (job, `ops/worker.py`): sends the PENDING applications (after the pre-submission
check of the fields each channel needs) and asks the channels about those under review,
outside any transaction, then records each answer (`service.record`). A channel that is down
leaves the application where it was, asked again at the next poll.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from fulema.channels.base import ChannelError, ChannelUnavailable
from fulema.channels.onboarding import OnboardingPort
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Consumer, Event, Poison, first_delivery
from fulema.core.vocab import ChannelName
from fulema.onboarding import service
from fulema.onboarding.domain import RegistrationState

log = structlog.get_logger(__name__)

CONSUMER = "onboarding.sync"
TOPICS = ("merchant.activate", "merchant.unfreeze", "merchant.change_settlement_account",
          "merchant.resubmit", "merchant.profile_changed", "onboarding.profile_changed")


def consumers(settings: Settings) -> list[Consumer]:
    channels = [c for c in settings.enabled_channels if _has_port(c)]

    async def handle(db: Database, event: Event) -> None:
        p: dict[str, Any] = event.payload
        async with db.transaction() as s:
            if not await first_delivery(s, CONSUMER, event.id):
                return
            await service.sync_merchant(s, merchant_id=str(p["merchant_id"]), channels=channels)

    return [Consumer(name=CONSUMER, handler=handle, topics=TOPICS,
                     on_poison=Poison.DEAD_LETTER, max_attempts=8)]


def _has_port(channel: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"fulema.channels.{channel}.onboarding") is not None


async def run_due(db: Database, settings: Settings,
                  ports: Mapping[ChannelName, OnboardingPort], *, force: bool = False) -> int:
    """One round: every due registration sent or asked about once (`force`: every one with the
    channel, due or not). Answers how many were."""
    done = 0
    for registration_id in await service.due(db, force=force):
        r = await service.get_registration(db, registration_id=registration_id)
        port = ports.get(ChannelName(r.channel))
        if port is None:
            continue  # the channel was disabled since: nothing to say to it
        job = await service.prepare(db, registration_id=registration_id,
                                    required=port.required_fields)
        if job is None:
            continue
        try:
            if job.state == RegistrationState.PENDING:
                result = await port.submit(job.application)
            else:
                result = await port.query(job.application, job.channel_ref)
        except ChannelError as exc:
            if job.state == RegistrationState.PENDING:
                await service.record(db, settings, registration_id=job.registration_id,
                                     asked_in=job.state, result=None,
                                     refusal=(exc.code, exc.message))
            else:  # a refused question is not a refused application: ask again later
                await service.record(db, settings, registration_id=job.registration_id,
                                     asked_in=job.state, result=None,
                                     unavailable=f"{exc.code}: {exc.message}")
        except ChannelUnavailable as exc:
            log.info("onboarding.channel_unavailable", channel=job.channel, error=str(exc))
            await service.record(db, settings, registration_id=job.registration_id,
                                 asked_in=job.state, result=None, unavailable=str(exc))
        else:
            await service.record(db, settings, registration_id=job.registration_id,
                                 asked_in=job.state, result=result)
        done += 1
    return done
