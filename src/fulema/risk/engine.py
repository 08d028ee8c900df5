"""The per-process decision engine: the cached rule set, the counter store, the merchant facts.

One `Engine` per `Database` (so tests with their own databases never share counters). The
rule set is re-read when `risk_state.ruleset` changes, checked at most every
`risk_ruleset_ttl_seconds`; merchant facts (category, activation day) are cached for
`MERCHANT_TTL` seconds, since a category rarely changes and a freeze is enforced by payments.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import FulemaError
from fulema.merchants import service as merchants
from fulema.risk import rules
from fulema.risk.counters import CounterStore, MemoryCounters, RedisCounters, redis_client
from fulema.risk.domain import Outcome, RuleSet, Verdict

log = structlog.get_logger(__name__)

MERCHANT_TTL = 300.0


@dataclass(frozen=True)
class MerchantFacts:
    mcc: str | None
    activated_at: datetime | None


class Engine:
    def __init__(self, db: Database, settings: Settings,
                 counters: CounterStore | None = None) -> None:
        self.db = db
        self.ttl = settings.risk_ruleset_ttl_seconds
        self.counters: CounterStore = counters or _counters(settings)
        self._ruleset: RuleSet | None = None
        self._next_check = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._merchants: dict[str, tuple[MerchantFacts, float]] = {}
        self.alerted: dict[str, float] = {}

    async def ruleset(self) -> RuleSet:
        """The compiled rule set. Once loaded, the version check runs in the background when
        the TTL has passed (the decision uses the rule set it has and never waits on the
        database); with a TTL of 0 it runs first, on every decision (tests)."""
        now = time.monotonic()
        if self._ruleset is not None and now < self._next_check:
            return self._ruleset
        if self._ruleset is None or self.ttl <= 0:
            await self._refresh()
            assert self._ruleset is not None
            return self._ruleset
        if self._refreshing is None or self._refreshing.done():
            self._next_check = now + self.ttl  # one refresh at a time
            self._refreshing = asyncio.create_task(self._refresh_quietly())
        return self._ruleset

    async def _refresh(self) -> None:
        version = await rules.current_version(self.db)
        if version == 0:
            await rules.install_defaults(self.db)
            version = await rules.current_version(self.db)
        if self._ruleset is None or self._ruleset.version != version:
            self._ruleset = await rules.load_ruleset(self.db)
        self._next_check = time.monotonic() + self.ttl

    async def _refresh_quietly(self) -> None:
        try:
            await self._refresh()
        except Exception as exc:
            log.warning("risk.ruleset_refresh_failed", error=type(exc).__name__)

    def expire_ruleset(self) -> None:
        """The next decision re-reads the version (tests; an operator's own process)."""
        self._next_check = 0.0

    def cached_merchant(self, merchant_id: str) -> MerchantFacts | None:
        """The merchant's facts while cached (the hot path: no coroutine), else None."""
        cached = self._merchants.get(merchant_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    async def merchant(self, merchant_id: str) -> MerchantFacts:
        now = time.monotonic()
        cached = self._merchants.get(merchant_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            snap = await merchants.check_merchant(self.db, merchant_id=merchant_id)
            events = await merchants.list_events(self.db, merchant_id=merchant_id)
        except FulemaError:
            facts = MerchantFacts(mcc=None, activated_at=None)  # payments refuses it anyway
        else:
            activated = [e.at for e in events if e.action == "activate"]
            facts = MerchantFacts(mcc=snap.mcc, activated_at=activated[-1] if activated else None)
        self._merchants[merchant_id] = (facts, now + MERCHANT_TTL)
        return facts

    async def evaluate(self, facts: Mapping[str, Any], *, now: datetime, txn_key: str
                       ) -> tuple[Verdict, int]:
        ruleset = self._ruleset  # the usual case, without the coroutine of `ruleset()`
        if ruleset is None or time.monotonic() >= self._next_check:
            ruleset = await self.ruleset()
        match = ruleset.match(facts)
        values: list[int] = []
        if match.pending:
            record = True  # a payment a rule denies outright must not count
            for r in match.fired:
                if r.outcome is Outcome.DENY:
                    record = False
            counters = self.counters
            ops = [op for _r, op in match.pending]
            if isinstance(counters, MemoryCounters):  # no coroutine for what never waits
                values = counters.apply_sync(ops, now=now, txn_key=txn_key, record=record)
            else:
                values = await counters.apply(ops, now=now, txn_key=txn_key, record=record)
        return RuleSet.finish(match, values), ruleset.version


def _counters(settings: Settings) -> CounterStore:
    if not settings.risk_redis_url:
        return MemoryCounters()
    return RedisCounters(redis_client(settings.risk_redis_url), prefix=settings.risk_redis_prefix)


_engines: weakref.WeakKeyDictionary[Database, Engine] = weakref.WeakKeyDictionary()
# The last database asked about and its engine: a process has one database, and looking it up
# in the WeakKeyDictionary made a weak reference on every order. Held weakly, like the dict.
_last: tuple[weakref.ref[Database], Engine] | None = None


def engine_for(db: Database, settings: Settings) -> Engine:
    global _last  # a one-entry cache in front of _engines
    last = _last
    if last is not None and last[0]() is db:
        return last[1]
    found = _engines.get(db)
    if found is None:
        found = _engines[db] = Engine(db, settings)
    _last = (weakref.ref(db), found)
    return found


def install_engine(db: Database, engine: Engine) -> None:
    """Tests and the benchmark: an engine with counters of their choosing."""
    global _last  # a one-entry cache in front of _engines
    _engines[db] = engine
    _last = None
