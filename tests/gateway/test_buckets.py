"""The token buckets behind the rate limits, in process and in the real Redis: a burst passes,
the next request is refused with an honest Retry-After, time refills, a refused request costs
no bucket anything, and N processes sharing Redis enforce one limit, also under concurrency."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from fulema.gateway.ratelimit import Charge, Limit, MemoryBuckets, RedisBuckets

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_a_burst_passes_then_the_next_waits_for_a_token() -> None:
    store = MemoryBuckets()
    limit = Limit(rate=2, burst=5)
    results = [await store.take([Charge("app:a:create", limit)], now=100.0, soft=0.8)
               for _ in range(6)]
    assert [r.allowed for r in results] == [True] * 5 + [False]
    assert results[-1].retry_after == pytest.approx(0.5)
    assert results[-1].refused_by == "app"
    later = await store.take([Charge("app:a:create", limit)], now=100.5, soft=0.8)
    assert later.allowed


async def test_a_refused_request_costs_no_other_bucket() -> None:
    store = MemoryBuckets()
    roomy, tight = Limit(rate=1, burst=10), Limit(rate=1, burst=1)
    first = await store.take([Charge("global", roomy), Charge("ip:1", tight)], now=0, soft=0.8)
    second = await store.take([Charge("global", roomy), Charge("ip:1", tight)], now=0, soft=0.8)
    assert first.allowed
    assert not second.allowed
    assert second.refused_by == "ip"
    # global gave one token (the first request), not two
    passes = [await store.take([Charge("global", roomy)], now=0, soft=0.8) for _ in range(10)]
    assert sum(p.allowed for p in passes) == 9


async def test_past_the_soft_level_requests_pass_degraded() -> None:
    store = MemoryBuckets()
    limit = Limit(rate=0.001, burst=10)
    marks = [(await store.take([Charge("k", limit)], now=0, soft=0.5)).degraded
             for _ in range(10)]
    # after 5 of 10 tokens are gone (soft 0.5) the rest pass degraded
    assert marks == [False] * 5 + [True] * 5


@pytest.fixture
async def redis_client() -> AsyncIterator[object]:
    redis = pytest.importorskip("redis.asyncio")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # any failure to reach it is the reason to skip
        await client.aclose()
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {type(exc).__name__}")
    yield client
    await client.aclose()


async def test_redis_buckets_refill_like_the_in_process_ones(redis_client: object) -> None:
    store = RedisBuckets(redis_client, prefix=f"test:{secrets.token_hex(4)}:")
    limit = Limit(rate=2, burst=5)
    results = [await store.take([Charge("app:a:create", limit)], now=100.0, soft=0.8)
               for _ in range(6)]
    assert [r.allowed for r in results] == [True] * 5 + [False]
    assert results[-1].retry_after == pytest.approx(0.5)
    assert (await store.take([Charge("app:a:create", limit)], now=100.5, soft=0.8)).allowed


async def test_processes_sharing_redis_enforce_one_limit_under_concurrency(
        redis_client: object) -> None:
    prefix = f"test:{secrets.token_hex(4)}:"
    # four "API processes", each with its own client and store, one shared limit of 20
    redis = pytest.importorskip("redis.asyncio")
    clients = [redis.Redis.from_url(REDIS_URL) for _ in range(4)]
    stores = [RedisBuckets(c, prefix=prefix) for c in clients]
    limit = Limit(rate=0.0001, burst=20)
    try:
        results = await asyncio.gather(*(
            stores[i % 4].take([Charge("global", Limit(1000, 1000)), Charge("app:x:create", limit)],
                               now=50.0, soft=0.8) for i in range(100)))
    finally:
        for c in clients:
            await c.aclose()
    assert sum(r.allowed for r in results) == 20


def test_adaptive_protection_sheds_only_past_what_the_process_has_shown_it_serves() -> None:
    from fulema.core.channel_settings import RateLimitSection
    from fulema.gateway.protection import Protection

    p = Protection(RateLimitSection(adaptive_min_inflight=4))
    for second in range(3):  # 100 completions a second at 20 ms at best: capacity 2 in flight
        for _ in range(100):
            p.window.record(1000.0 + second, 0.02)
    p.inflight = 4
    assert not p.overloaded()  # at the floor: never shed
    p.inflight = 5
    assert p.overloaded()
    quiet = Protection(RateLimitSection(adaptive_min_inflight=0))
    quiet.inflight = 10_000
    assert not quiet.overloaded()  # 0 turns it off
