"""Token buckets that N API processes share, and the decision they add up to.

A request is charged to several buckets at once (global, its source, its merchant app and
endpoint class); it passes only if every bucket has a token, and then takes one from each, so
a refused request costs no bucket anything. With Redis configured this happens in one Lua
script call (atomic, one round trip), so every API process enforces the same limit; on the
embedded default the buckets live in the process (one event loop: no lock needed).

Past a soft level (a bucket below `1 - soft` of its burst) the request passes but is marked
*degraded*: non-essential work is shed for it (see docs/operations.md). Time comes from the
caller (`core.clock`), so tests move it; processes sharing Redis must keep NTP time, as
every payment system's hosts do.

(Libraries exist for HTTP rate limiting, e.g. `limits`/`slowapi`; none takes several buckets
atomically in one Redis round trip with a soft level, which is what degrade-then-reject needs,
and the script is twenty lines.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Limit:
    """`rate` tokens per second, at most `burst` saved up."""

    rate: float
    burst: int


@dataclass(frozen=True)
class Charge:
    key: str
    limit: Limit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    degraded: bool = False
    retry_after: float = 0.0
    refused_by: str = ""  # the bucket that refused (a key prefix: never a secret)


class BucketStore(Protocol):
    async def take(self, charges: list[Charge], *, now: float, soft: float) -> Decision: ...


def _refill(tokens: float, updated: float, limit: Limit, now: float) -> float:
    return min(float(limit.burst), tokens + max(0.0, now - updated) * limit.rate)


class MemoryBuckets:
    """One process's buckets. Keys not used for an hour are forgotten."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._swept = 0.0

    async def take(self, charges: list[Charge], *, now: float, soft: float) -> Decision:
        levels = []
        for c in charges:
            tokens, updated = self._buckets.get(c.key, (float(c.limit.burst), now))
            levels.append(_refill(tokens, updated, c.limit, now))
        for c, level in zip(charges, levels, strict=True):
            if level < 1.0:
                wait = (1.0 - level) / c.limit.rate if c.limit.rate > 0 else math.inf
                return Decision(False, retry_after=wait, refused_by=c.key.split(":")[0])
        degraded = False
        for c, level in zip(charges, levels, strict=True):
            self._buckets[c.key] = (level - 1.0, now)
            degraded = degraded or (level - 1.0) < (1.0 - soft) * c.limit.burst
        if now - self._swept > 3600:
            self._sweep(now)
        return Decision(True, degraded=degraded)

    def _sweep(self, now: float) -> None:
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 3600}
        self._swept = now


# KEYS: the buckets. ARGV: now, soft, then rate and burst per key.
# Returns {allowed (0/1), degraded (0/1), retry_after_ms, index of the refusing key}.
_SCRIPT = """
local now = tonumber(ARGV[1])
local soft = tonumber(ARGV[2])
local levels = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local state = redis.call('HMGET', key, 't', 'u')
  local tokens = tonumber(state[1]) or burst
  local updated = tonumber(state[2]) or now
  local level = math.min(burst, tokens + math.max(0, now - updated) * rate)
  if level < 1 then
    local wait = 0
    if rate > 0 then wait = math.ceil((1 - level) / rate * 1000) else wait = 3600000 end
    return {0, 0, wait, i}
  end
  levels[i] = level
end
local degraded = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local left = levels[i] - 1
  redis.call('HSET', key, 't', tostring(left), 'u', tostring(now))
  local ttl = 3600
  if rate > 0 then ttl = math.ceil(burst / rate) + 60 end
  redis.call('EXPIRE', key, ttl)
  if left < (1 - soft) * burst then degraded = 1 end
end
return {1, degraded, 0, 0}
"""


class RedisBuckets:
    """Buckets in Redis, shared by every process that names the same server and prefix."""

    def __init__(self, client: Any, *, prefix: str = "fulema:rl:") -> None:
        self._redis = client
        self._prefix = prefix
        self._script = client.register_script(_SCRIPT)

    async def take(self, charges: list[Charge], *, now: float, soft: float) -> Decision:
        keys = [self._prefix + c.key for c in charges]
        args: list[float] = [now, soft]
        for c in charges:
            args += [c.limit.rate, c.limit.burst]
        allowed, degraded, wait_ms, index = await self._script(keys=keys, args=args)
        if allowed:
            return Decision(True, degraded=bool(degraded))
        refused = charges[int(index) - 1].key.split(":")[0]
        return Decision(False, retry_after=int(wait_ms) / 1000, refused_by=refused)

    async def close(self) -> None:
        await self._redis.aclose()
