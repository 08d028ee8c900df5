"""What every payments use case needs, built once by the composition root (`app.state.payments`)
and passed in: the database, the settings tree and the enabled channels. One place, so a use
case module never reaches for globals and a test builds its own."""

from __future__ import annotations

from dataclasses import dataclass

from fulema.channels.registry import ChannelRegistry
from fulema.core.config import Settings
from fulema.core.db import Database


@dataclass(frozen=True)
class Deps:
    db: Database
    settings: Settings
    channels: ChannelRegistry
