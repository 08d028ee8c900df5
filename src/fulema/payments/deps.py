"""What every payments use case needs, built once by the composition root (`app.state.payments`)
and passed in: the database, the settings tree and the enabled channels. One place, so a use
case module never reaches for globals and a test builds its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from fulema.channels.registry import ChannelRegistry
from fulema.core.config import Settings
from fulema.core.db import Database


class WebhookSwitch(Protocol):
    """Whether the merchant wants its notify_url called for `topic` (payment.succeeded,
    refund.succeeded): asked in the transaction that records the change, so the answer and the
    notification commit together. The message center owns the switch (the merchant's
    subscriptions); the composition root plugs it in, so payments never imports messaging."""

    async def __call__(self, session: AsyncSession, *, merchant_id: str, topic: str) -> bool: ...


async def webhook_always_on(session: AsyncSession, *, merchant_id: str, topic: str) -> bool:
    """Without a message center: every order or refund that names a notify_url is notified."""
    return True


@dataclass(frozen=True)
class Deps:
    db: Database
    settings: Settings
    channels: ChannelRegistry
    webhook_switch: WebhookSwitch = webhook_always_on
