"""The breaker must see an Alipay or UnionPay outage on payer-code payments.

Both adapters once swallowed ChannelUnavailable and returned an UNKNOWN result, which the
breaker counted as a success: a dead gateway never tripped it and every till waited out the
timeout. These tests drive the real adapter against its sandbox in 5xx mode through a
GuardedChannel and check that the breaker opens, then refuses at once without sending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from fulema.channels.base import BarcodePayRequest, Channel, ChannelUnavailable
from fulema.channels.breaker import BreakerState, CircuitOpen
from fulema.channels.routing import GuardedChannel, guard
from fulema.core.channel_settings import BreakerSection
from fulema.core.config import Settings
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import ChannelName
from tests.channels import test_alipay, test_unionpay

WINDOW = BreakerSection(window_size=4, minimum_calls=4, failure_ratio=0.5,
                         slow_call_seconds=5, open_seconds=30, half_open_probes=1,
                         call_timeout_seconds=5)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outage")


Wallet = Callable[[str, str], Awaitable[int]]


Made = tuple[Channel, Wallet, str]  # the adapter, the fault switch, a fresh payer code


@asynccontextmanager
async def _alipay(settings: Settings) -> AsyncIterator[Made]:
    env = test_alipay.make_env(settings)

    async def wallet(path: str, mode: str) -> int:
        return (await env.wallet("POST", path, json={"mode": mode})).status_code

    try:
        yield env.channel, wallet, await test_alipay.payer_code(env, test_alipay.RICH)
    finally:
        await test_alipay.close_env(env)


@asynccontextmanager
async def _unionpay(settings: Settings) -> AsyncIterator[Made]:
    env, _ = test_unionpay.make_env(settings)

    async def wallet(path: str, mode: str) -> int:
        return (await env.wallet("POST", path, json={"mode": mode})).status_code

    try:
        yield env.channel, wallet, await test_unionpay.payer_code(env, "up_rich")
    finally:
        await test_unionpay.close_env(env)


@pytest.mark.parametrize(("name", "make"), [(ChannelName.ALIPAY, _alipay),
                                            (ChannelName.UNIONPAY, _unionpay)])
async def test_breaker_opens_when_the_gateway_answers_5xx_to_payer_codes(
        data_dir: Path, name: ChannelName,
        make: Callable[[Settings], AbstractAsyncContextManager[Made]]) -> None:
    settings = Settings(public_base_url="http://testserver", data_dir=data_dir)
    async with make(settings) as (channel, faults, code):
        guarded: GuardedChannel = guard(name, [("primary", channel)], WINDOW)
        assert await faults("/faults", "5xx") == 200
        for _ in range(WINDOW.window_size):
            with pytest.raises(ChannelUnavailable) as err:
                await guarded.barcode_pay(BarcodePayRequest(
                    order_id=new_id("ord"), amount=Money(100), subject="x", auth_code=code))
            assert not isinstance(err.value, CircuitOpen)  # these were sent and failed
        assert guarded.breaker("primary").state == BreakerState.OPEN
        # Now refused before sending: the till hears at once instead of after a timeout.
        assert await faults("/faults", "none") == 200
        with pytest.raises(CircuitOpen):
            await guarded.barcode_pay(BarcodePayRequest(
                order_id=new_id("ord"), amount=Money(100), subject="x", auth_code=code))
        with pytest.raises(CircuitOpen):
            await guarded.query(new_id("ord"))
