"""Counters, in process and in Redis (the real one at 127.0.0.1:6379, keys under `h7:`):
exact sliding windows across their edges with a moving clock, Beijing calendar days, a retry
counted once, a refused payment not counted, and atomicity under concurrency."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from fulema.risk.counters import CounterStore, MemoryCounters, RedisCounters, redis_client
from fulema.risk.domain import CounterOp

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
REDIS_URL = "redis://127.0.0.1:6379/0"


def op(measure: str = "count", *, key: str = "p1", window: int | str = 60, amount: int = 100,
       payer: str | None = None, threshold: int = 10**12, deny: bool = False,
       action: str = "pay", rule: str = "r") -> CounterOp:
    return CounterOp(rule_id=rule, measure=measure, key=key, window=window, amount=amount,
                     payer=payer, threshold=threshold, deny=deny, action=action)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    client = redis_client(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"h7:test:{secrets.token_hex(4)}:"
    yield RedisCounters(client, prefix=prefix)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_sliding_count_and_sum_across_the_window_edge(store: CounterStore) -> None:
    async def at(seconds: float, key: str, amount: int = 100) -> list[int]:
        return await store.apply([op("count"), op("sum", rule="s", amount=amount)],
                                 now=T0 + timedelta(seconds=seconds), txn_key=key, record=True)

    assert await at(0, "a") == [1, 100]
    assert await at(30, "b", 50) == [2, 150]
    assert await at(59.999, "c") == [3, 250]
    assert await at(60, "d") == [3, 250]  # "a" (t=0) left the window (t-60, t]
    assert await at(90, "e", 1) == [3, 201]  # "b" (t=30) left at t=90
    assert await at(200, "f", 7) == [1, 7]


async def test_calendar_day_is_beijing_day(store: CounterStore) -> None:
    day = op("sum", window="day")
    late = datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Beijing
    assert await store.apply([day], now=late, txn_key="a", record=True) == [100]
    assert await store.apply([day], now=late, txn_key="b", record=True) == [200]
    midnight = late + timedelta(seconds=1)
    assert await store.apply([day], now=midnight, txn_key="c", record=True) == [100]


async def test_a_retry_counts_once(store: CounterStore) -> None:
    ops = [op("count"), op("sum", rule="s")]
    first = await store.apply(ops, now=T0, txn_key="m1:order-1", record=True)
    again = await store.apply(ops, now=T0 + timedelta(seconds=1), txn_key="m1:order-1",
                              record=True)
    assert first == [1, 100]
    assert again == [1, 100]  # the retry sees the counters as they are, itself included once
    assert await store.apply(ops, now=T0 + timedelta(seconds=2), txn_key="m1:order-2",
                             record=True) == [2, 200]


async def test_a_refused_payment_is_not_counted(store: CounterStore) -> None:
    cap = op("sum", window="day", amount=300, threshold=500, deny=True)
    velocity = op("count", rule="v")
    assert await store.apply([cap, velocity], now=T0, txn_key="a", record=True) == [300, 1]
    assert await store.apply([cap, velocity], now=T0, txn_key="b", record=True) == [600, 2]
    # "b" went over the cap: nothing of it was recorded, in any counter
    small = op("sum", window="day", amount=200, threshold=500, deny=True)
    assert await store.apply([small, velocity], now=T0, txn_key="c", record=True) == [500, 2]


async def test_distinct_payers_and_refund_ratio(store: CounterStore) -> None:
    for i, payer in enumerate(["x", "y", "x", "z"]):
        values = await store.apply([op("distinct_payers", key="m1", payer=payer)],
                                   now=T0 + timedelta(seconds=i), txn_key=f"t{i}", record=True)
    assert values == [3]
    assert await store.apply([op("distinct_payers", key="m1", payer="w")],
                             now=T0 + timedelta(seconds=63), txn_key="t9", record=False) == [1]
    ratio = op("refund_ratio", key="m1", window=3600, amount=10_000)
    assert await store.apply([ratio], now=T0, txn_key="p1", record=True) == [0]
    refund = op("refund_ratio", key="m1", window=3600, amount=2_500, action="refund")
    assert await store.apply([refund], now=T0, txn_key="R1", record=True) == [250]


async def test_concurrent_decisions_count_exactly(store: CounterStore) -> None:
    count = op("count", window=600)

    async def one(i: int) -> int:
        return (await store.apply([count], now=T0, txn_key=f"c{i}", record=True))[0]

    seen = await asyncio.gather(*(one(i) for i in range(200)))
    assert sorted(seen) == list(range(1, 201))  # each saw its own place: no lost update


async def test_concurrent_payments_never_exceed_a_deny_cap(store: CounterStore) -> None:
    cap = op("sum", window="day", amount=1_000, threshold=50_000, deny=True)

    async def one(i: int) -> bool:
        value = (await store.apply([cap], now=T0, txn_key=f"p{i}", record=True))[0]
        return value <= cap.threshold

    allowed = await asyncio.gather(*(one(i) for i in range(120)))
    assert sum(allowed) == 50  # exactly 500.00 yuan got through, however they interleaved
    final = await store.apply([cap], now=T0, txn_key="probe", record=False)
    assert final == [51_000]


async def test_concurrent_retries_of_one_create_count_once(store: CounterStore) -> None:
    count = op("count", window=600)
    await asyncio.gather(*(store.apply([count], now=T0, txn_key="same", record=True)
                           for _ in range(50)))
    assert await store.apply([count], now=T0, txn_key="other", record=False) == [2]
