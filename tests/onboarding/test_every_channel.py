"""The issue's onboarding checks at every channel, where test_flow shows them at one or two:
the verification step (Alipay, e-CNY), payments refused before ACTIVE and accepted after in the
partner form, a new settlement account re-registered everywhere (new orders under the new
version's sub-merchant id), the cashier offering an app only once its channel is ACTIVE, and
missing fields listed with nothing sent."""

from __future__ import annotations

import pytest

from tests.onboarding.helpers import (
    OPS,
    approve_all,
    current,
    decide,
    registrations,
    rounds,
    sandbox_state,
    stored_sub,
    supplied,
)
from tests.payments.conftest import Platform

ALL = ["wechat", "alipay", "unionpay", "ecny", "bankpay"]
# the sandboxes' apps (sandbox/appshell): apps that confirm a plate payment themselves
UA = {"unionpay": "Mozilla/5.0 (iPhone) UnionPay/1.0 CloudPay",
      "ecny": "Mozilla/5.0 (iPhone) eCNY/1.0.9", "bankpay": "Mozilla/5.0 (iPhone) FulemaBank/3.1"}
APP = {"unionpay": "云闪付", "ecny": "数字人民币", "bankpay": "本行手机银行"}


@pytest.mark.parametrize("channel", ["alipay", "ecny"])
async def test_verification_step_then_approval(platform: Platform, channel: str) -> None:
    p = platform
    await supplied(p)
    reg = await current(p, channel)
    assert reg["state"] == "UNDER_REVIEW"
    await decide(p, channel, reg["id"], "verify")
    await rounds(p)
    reg = await current(p, channel)
    assert reg["state"] == "NEEDS_ACTION"
    assert reg["sub_merchant_id"] is None
    await decide(p, channel, reg["id"], "approve")
    await rounds(p)
    reg = await current(p, channel)
    assert reg["state"] == "ACTIVE"
    assert reg["sub_merchant_id"]


@pytest.mark.parametrize("channel", ["alipay", "unionpay", "ecny", "bankpay"])
async def test_payments_refused_before_active_and_accepted_after(platform: Platform,
                                                                 channel: str) -> None:
    p = platform
    p.settings.onboarding_required = True
    await supplied(p)
    refused = await p.order(channel=channel)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "CHANNEL_NOT_REGISTERED"
    reg = await approve_all(p, channel)
    assert reg["state"] == "ACTIVE"
    accepted = await p.order(channel=channel)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "PAYING"
    assert await stored_sub(p, accepted.json()["order_id"]) == reg["sub_merchant_id"]


async def test_a_new_settlement_account_re_registers_at_every_channel(platform: Platform
                                                                      ) -> None:
    from fulema.merchants import service as merchants

    p = platform
    await supplied(p)
    first = {c: (await approve_all(p, c))["sub_merchant_id"] for c in ALL}
    assert all(first.values()), first
    await merchants.change_settlement_account(
        p.db, merchant_id=p.merchant_id, settlement_account="6222020000000000003",
        settlement_account_name="付了码演示商户", operator="ops.li")
    await rounds(p)
    for channel in ALL:
        regs = await registrations(p, channel)
        assert [(r["version"], r["state"]) for r in regs] == [(1, "ACTIVE"), (2, "UNDER_REVIEW")]
    # until the new version is approved, orders still go under the first one's id
    assert await stored_sub(p, (await p.order(channel="ecny")).json()["order_id"]) == \
        first["ecny"]
    for channel in ALL:
        second = await approve_all(p, channel)
        assert second["version"] == 2
        regs = await registrations(p, channel)
        assert [r["state"] for r in regs] == ["SUPERSEDED", "ACTIVE"]
        if channel in ("unionpay", "ecny", "bankpay"):  # a new application, a new id there
            assert second["sub_merchant_id"] != first[channel]
            order = (await p.order(channel=channel)).json()
            assert await stored_sub(p, order["order_id"]) == second["sub_merchant_id"]


@pytest.mark.parametrize("channel", ["unionpay", "ecny", "bankpay"])
async def test_the_cashier_offers_an_app_only_once_its_channel_is_active(
        platform: Platform, channel: str) -> None:
    p = platform
    p.settings.onboarding_required = True
    await supplied(p)
    headers = {"User-Agent": UA[channel]}
    page = await p.http.get("/pay/q/DEMO000001", headers=headers)
    assert page.status_code == 200
    assert "请使用以下应用扫码" in page.text
    assert APP[channel] not in page.text
    await approve_all(p, channel)
    page = await p.http.get("/pay/q/DEMO000001", headers=headers)
    assert page.status_code == 200
    assert "请使用以下应用扫码" not in page.text  # the amount pad, in that app
    assert APP[channel] in page.text


@pytest.mark.parametrize("channel", ["alipay", "unionpay"])
async def test_missing_fields_are_listed_and_nothing_reaches_the_channel(
        platform: Platform, channel: str) -> None:
    p = platform
    resp = await p.http.post(
        f"/ops/v1/onboarding/merchants/{p.merchant_id}/channels/{channel}/register",
        headers=OPS)
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "ONBOARDING_FIELDS_MISSING"
    assert body["details"]["missing"] == {"alipay": ["service_phone", "address_code"],
                                          "unionpay": ["address_code"]}[channel]
    await rounds(p)
    assert (await current(p, channel))["state"] == "PENDING"
    state = sandbox_state(p, channel)
    seen = state.indirect.by_external if channel == "alipay" else state.registrations.by_order
    assert seen == {}
