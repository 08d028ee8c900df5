"""Counters for the rules: sliding windows (count, sum, distinct payers, refund ratio) and
calendar buckets (Beijing day and month), in process on the embedded default and in Redis when
configured (shared by every API process).

One call per decision (`apply`): it reads every counter the decision needs with this transaction
included, and records the transaction in all of them unless a DENY rule's counter would go over
its threshold (a refused payment must not eat the payer's daily cap) or the transaction was
already counted: the transaction's key is the merchant + out_trade_no (or out_refund_no), kept
for the longest window, so an idempotent retry of a create counts once. In Redis the whole call
is one Lua script: atomic, and one round trip.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from fulema.risk.domain import DAY, MAX_WINDOW_SECONDS, CounterOp

BEIJING = timedelta(hours=8)
BEIJING_SECONDS = 8 * 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SWEEP_SECONDS = 6 * 3600


@lru_cache(maxsize=64)
def _names(day_number: int) -> tuple[str, str]:
    """A Beijing day's and month's bucket names, by the day's number since the epoch."""
    local = EPOCH + timedelta(days=day_number)
    return local.strftime("%Y%m%d"), local.strftime("%Y%m")


def bucket(window: str, now: datetime) -> tuple[str, int]:
    """The calendar bucket's name and how long to keep it (seconds)."""
    day, month = _names(int((now.timestamp() + BEIJING_SECONDS) // DAY))
    if window == "day":
        return day, 2 * DAY
    return month, 32 * DAY


def measure_kind(op: CounterOp) -> str:
    if op.kind:
        return op.kind
    if isinstance(op.window, str):
        return "cc" if op.measure == "count" else "cs"
    return {"count": "sc", "sum": "ss", "distinct_payers": "dp", "refund_ratio": "rr"}[op.measure]


class CounterStore(Protocol):
    async def apply(self, ops: Sequence[CounterOp], *, now: datetime, txn_key: str,
                    record: bool) -> list[int]: ...


class _Window:
    """An exact sliding window: (time, amount, member) in arrival order and running totals."""

    __slots__ = ("items", "total")

    def __init__(self) -> None:
        self.items: deque[tuple[float, int]] = deque()
        self.total = 0

    def prune(self, cutoff: float) -> None:
        items = self.items
        while items and items[0][0] <= cutoff:
            self.total -= items.popleft()[1]


class MemoryCounters:
    """In process (the embedded default: one process serves every request)."""

    def __init__(self) -> None:
        # Keyed by tuples (the counter's rule id, the `by` value[, the bucket's name]): a
        # tuple of strings whose hashes are cached costs less per counter than formatting and
        # hashing a new string key on every order.
        self._windows: dict[tuple[str, ...], _Window] = {}
        self._distinct: dict[tuple[str, str], OrderedDict[str, float]] = {}
        self._buckets: dict[tuple[str, str, str], tuple[int, float]] = {}  # -> (value, expires)
        self._seen: dict[str, float] = {}
        self._seen_order: deque[tuple[float, str]] = deque()  # expiries are in arrival order
        self._sweep_at = 0.0

    async def apply(self, ops: Sequence[CounterOp], *, now: datetime, txn_key: str,
                    record: bool) -> list[int]:
        return self.apply_sync(ops, now=now, txn_key=txn_key, record=record)

    def apply_sync(self, ops: Sequence[CounterOp], *, now: datetime, txn_key: str,
                   record: bool) -> list[int]:
        """Every counter's value with this transaction, then (unless refused or seen) the
        transaction recorded in each. One loop per step with the containers it found kept for
        the second, no method call per counter: this runs with every order."""
        t = now.timestamp()
        order = self._seen_order
        while order and order[0][0] <= t:
            self._seen.pop(order.popleft()[1], None)
        if t >= self._sweep_at:
            self._sweep(t)
        seen = txn_key in self._seen
        inc = 0 if seen else 1
        values: list[int] = []
        found: list[Any] = []  # per op: what step two records into
        blocked = False
        day, month = _names(int((t + BEIJING_SECONDS) // DAY))
        buckets, windows, distinct = self._buckets, self._windows, self._distinct
        for op in ops:
            kind = op.kind or measure_kind(op)
            amount = op.amount
            if kind == "cc" or kind == "cs":
                ckey = (op.rule_id, op.key, day if op.window == "day" else month)
                stored = buckets.get(ckey)
                base = stored[0] if stored is not None and stored[1] > t else 0
                v = base + inc * (1 if kind == "cc" else amount)
                found.append(ckey)
            elif kind == "dp":
                dkey = (op.rule_id, op.key)
                members = distinct.get(dkey)
                payer = op.payer
                if members is None:
                    v = inc if payer else 0
                else:
                    cutoff = t - op.window  # type: ignore[operator]
                    while members and next(iter(members.values())) <= cutoff:
                        members.popitem(last=False)
                    v = len(members) + (inc if payer and payer not in members else 0)
                found.append(dkey)
            elif kind == "rr":
                cutoff = t - op.window  # type: ignore[operator]
                rkey, pkey = (op.rule_id, "R", op.key), (op.rule_id, "P", op.key)
                refunds, pays = windows.get(rkey), windows.get(pkey)
                num = den = 0
                if refunds is not None:
                    refunds.prune(cutoff)
                    num = refunds.total
                if pays is not None:
                    pays.prune(cutoff)
                    den = pays.total
                if op.action == "refund":
                    num += inc * amount
                    found.append(rkey)
                else:
                    den += inc * amount
                    found.append(pkey)
                v = num * 1000 // max(den, 1)
            else:
                wkey = (op.rule_id, op.key)
                w = windows.get(wkey)
                if w is None:
                    v = inc if kind == "sc" else inc * amount
                    found.append(wkey)
                else:
                    items = w.items
                    cutoff = t - op.window  # type: ignore[operator]
                    while items and items[0][0] <= cutoff:  # _Window.prune, inline
                        w.total -= items.popleft()[1]
                    v = len(items) + inc if kind == "sc" else w.total + inc * amount
                    found.append(w)
            values.append(v)
            if op.deny and v > op.threshold:
                blocked = True
        if record and not seen and not blocked:
            for op, key in zip(ops, found, strict=True):
                kind = op.kind or measure_kind(op)
                if kind == "cc" or kind == "cs":
                    stored = buckets.get(key)
                    base = stored[0] if stored is not None and stored[1] > t else 0
                    ttl = 2 * DAY if op.window == "day" else 32 * DAY
                    buckets[key] = (base + (1 if kind == "cc" else op.amount), t + ttl)
                elif kind == "dp":
                    if op.payer:
                        members = distinct.get(key)
                        if members is None:
                            members = distinct[key] = OrderedDict()
                        members.pop(op.payer, None)
                        members[op.payer] = t
                else:  # a window found in step one, or the key of one to make
                    w = key if key.__class__ is _Window else windows.get(key)
                    if w is None:
                        w = windows[key] = _Window()
                    w.items.append((t, op.amount))
                    w.total += op.amount
            self._seen[txn_key] = t + MAX_WINDOW_SECONDS
            order.append((t + MAX_WINDOW_SECONDS, txn_key))
        return values

    def _sweep(self, t: float) -> None:
        """Drops what has expired, every few hours: keys of payers never seen again."""
        self._sweep_at = t + SWEEP_SECONDS
        self._buckets = {k: v for k, v in self._buckets.items() if v[1] > t}
        for key in [k for k, w in self._windows.items() if not w.items
                    or w.items[-1][0] <= t - MAX_WINDOW_SECONDS]:
            del self._windows[key]


# KEYS are not declared: the script builds its keys from the prefix (one Redis, not a cluster).
LUA = """
local now = tonumber(ARGV[1])
local record = ARGV[2] == '1'
local seen_key = ARGV[3]
local seen_ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local seen = redis.call('EXISTS', seen_key) == 1
local inc = 1
if seen then inc = 0 end
local function prune(key, cutoff)
  local old = redis.call('ZRANGEBYSCORE', key .. ':z', '-inf', cutoff)
  if #old > 0 then
    local gone = 0
    for s = 1, #old, 1000 do
      local chunk = {}
      for k = s, math.min(s + 999, #old) do chunk[#chunk + 1] = old[k] end
      local amts = redis.call('HMGET', key .. ':h', unpack(chunk))
      for _, a in ipairs(amts) do gone = gone + (tonumber(a) or 0) end
      redis.call('HDEL', key .. ':h', unpack(chunk))
    end
    redis.call('ZREMRANGEBYSCORE', key .. ':z', '-inf', cutoff)
    redis.call('DECRBY', key .. ':t', gone)
  end
end
local function total(key)
  return tonumber(redis.call('GET', key .. ':t')) or 0
end
local values = {}
local ops = {}
local blocked = false
local i = 6
for j = 1, n do
  local kind, key, win = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local amt, payer = tonumber(ARGV[i + 3]), ARGV[i + 4]
  local thr, deny, action = tonumber(ARGV[i + 5]), ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  local v = 0
  local cutoff = now - win
  if kind == 'cc' then
    v = (tonumber(redis.call('GET', key)) or 0) + inc
  elseif kind == 'cs' then
    v = (tonumber(redis.call('GET', key)) or 0) + inc * amt
  elseif kind == 'dp' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
    v = redis.call('ZCARD', key)
    if payer ~= '' and inc == 1 and not redis.call('ZSCORE', key, payer) then v = v + 1 end
  elseif kind == 'rr' then
    prune(key .. ':R', cutoff)
    prune(key .. ':P', cutoff)
    local num, den = total(key .. ':R'), total(key .. ':P')
    if action == 'refund' then num = num + inc * amt else den = den + inc * amt end
    if den < 1 then den = 1 end
    v = math.floor(num * 1000 / den)
  else
    prune(key, cutoff)
    if kind == 'sc' then v = redis.call('ZCARD', key .. ':z') + inc
    else v = total(key) + inc * amt end
  end
  values[j] = v
  if deny == '1' and v > thr then blocked = true end
  ops[j] = {kind, key, win, amt, payer, action}
end
if record and not seen and not blocked then
  local member = seen_key
  for j = 1, n do
    local kind, key, win, amt, payer, action = unpack(ops[j])
    if kind == 'cc' then
      redis.call('INCRBY', key, 1) redis.call('PEXPIRE', key, win)
    elseif kind == 'cs' then
      redis.call('INCRBY', key, amt) redis.call('PEXPIRE', key, win)
    elseif kind == 'dp' then
      if payer ~= '' then redis.call('ZADD', key, now, payer) redis.call('PEXPIRE', key, win + 1000) end
    else
      local k = key
      if kind == 'rr' then
        if action == 'refund' then k = key .. ':R' else k = key .. ':P' end
      end
      redis.call('ZADD', k .. ':z', now, member)
      redis.call('HSET', k .. ':h', member, amt)
      redis.call('INCRBY', k .. ':t', amt)
      for _, suffix in ipairs({':z', ':h', ':t'}) do redis.call('PEXPIRE', k .. suffix, win + 1000) end
    end
  end
  redis.call('SET', seen_key, '1', 'PX', seen_ttl)
end
return values
"""


REDIS_POOL_SIZE = 64


def redis_client(url: str) -> Any:
    """A client whose pool makes a burst of decisions wait for a connection rather than fail."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=REDIS_POOL_SIZE,
                                                    timeout=5)
    return aioredis.Redis(connection_pool=pool)


class RedisCounters:
    """In Redis: every API process shares the counters; one EVALSHA per decision.

    Times are the application's clock in milliseconds (never Redis's TIME), so tests move time
    and processes agree with the clock that stamps the orders."""

    def __init__(self, client: Any, *, prefix: str = "fulema:risk:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(LUA)

    async def apply(self, ops: Sequence[CounterOp], *, now: datetime, txn_key: str,
                    record: bool) -> list[int]:
        ms = int(now.timestamp() * 1000)
        p = self.prefix
        args: list[Any] = [ms, "1" if record else "0", f"{p}seen:{txn_key}",
                           MAX_WINDOW_SECONDS * 1000, len(ops)]
        for op in ops:
            kind = measure_kind(op)
            if kind in ("cc", "cs"):
                name, ttl = bucket(str(op.window), now)
                key, win = f"{p}{op.rule_id}|{op.key}|{name}", ttl * 1000
            else:
                assert isinstance(op.window, int)
                key, win = f"{p}{op.rule_id}|{op.key}", op.window * 1000
            args += [kind, key, win, op.amount, op.payer or "", op.threshold,
                     "1" if op.deny else "0", op.action]
        result = await self._script(keys=[], args=args)
        return [int(v) for v in result]
