"""The one source of time.

Order expiry, timestamps on signed requests, notification back-off and settlement dates all
read `clock.now()`, so a test can move time instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        base = self._frozen if self._frozen is not None else datetime.now(UTC)
        return base + self._offset

    def timestamp(self) -> int:
        return int(self.now().timestamp())

    # test controls
    def freeze(self, at: datetime | None = None) -> None:
        self._frozen = at or datetime.now(UTC)

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    def reset(self) -> None:
        self._frozen = None
        self._offset = timedelta(0)


def as_utc(value: datetime) -> datetime:
    """Databases without time zones (SQLite, MySQL) give naive datetimes back; they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


clock = Clock()
