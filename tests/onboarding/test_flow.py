"""The whole onboarding over HTTP, against the mounted WeChat and Alipay sandboxes: the
pre-submission check, approval with a verification step, rejection then resubmission, a
profile change re-registered, and payments refused before ACTIVE and accepted after."""

from __future__ import annotations

import pytest

from fulema.core.events import publish
from fulema.merchants import service as merchants
from fulema.merchants.models import Merchant
from tests.onboarding.helpers import (
    OPS,
    SUPPLEMENT,
    approve_all,
    current,
    decide,
    registrations,
    rounds,
    sandbox_state,
    supplied,
)
from tests.payments.conftest import Platform


async def test_missing_fields_are_listed_and_nothing_is_sent(platform: Platform) -> None:
    p = platform
    resp = await p.http.post(
        f"/ops/v1/onboarding/merchants/{p.merchant_id}/channels/wechat/register", headers=OPS)
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "ONBOARDING_FIELDS_MISSING"
    assert body["details"]["missing"] == ["contact_email", "service_phone", "settlement_bank",
                                          "address_code"]
    check = await p.http.get(f"/ops/v1/onboarding/merchants/{p.merchant_id}/check", headers=OPS)
    assert check.json()["missing"]["alipay"] == ["service_phone", "address_code"]
    assert check.json()["missing"]["unionpay"] == ["address_code"]
    # the activation's registrations wait, with the same list, and nothing reached WeChat
    await rounds(p)
    reg = await current(p, "wechat")
    assert reg["state"] == "PENDING"
    assert reg["missing"] == body["details"]["missing"]
    assert sandbox_state(p, "wechat").applyments.by_code == {}
    mine = await p.call("GET", "/api/v1/onboarding")
    assert mine.status_code == 200
    assert {r["channel"]: r["state"] for r in mine.json()["data"]} == {
        "wechat": "PENDING", "alipay": "PENDING", "unionpay": "PENDING",
        # what these two need the merchant profile holds: sent on activation
        "ecny": "UNDER_REVIEW", "bankpay": "UNDER_REVIEW"}


async def test_bad_supplement_is_refused_and_unknown_channel_named(platform: Platform) -> None:
    p = platform
    resp = await p.http.put(f"/ops/v1/onboarding/merchants/{p.merchant_id}/supplement",
                            json={"contact_email": "not-an-email"}, headers=OPS)
    assert resp.status_code == 400
    assert resp.json()["code"] == "VALIDATION_ERROR"
    resp = await p.http.post(
        f"/ops/v1/onboarding/merchants/{p.merchant_id}/channels/paypal/register", headers=OPS)
    assert resp.status_code == 400
    assert resp.json()["code"] == "ONBOARDING_NOT_SUPPORTED"
    resp = await p.http.put("/ops/v1/onboarding/merchants/mch_nope/supplement",
                            json=SUPPLEMENT, headers=OPS)
    assert resp.status_code == 404
    assert resp.json()["code"] == "MERCHANT_NOT_FOUND"
    assert (await p.http.get(f"/ops/v1/onboarding/merchants/{p.merchant_id}/registrations")
            ).status_code == 401


async def test_wechat_verification_step_then_approval(platform: Platform) -> None:
    p = platform
    await supplied(p)
    reg = await current(p, "wechat")
    assert reg["state"] == "UNDER_REVIEW"
    assert reg["version"] == 1
    # the sandbox decrypted the RSA-OAEP identity fields to the merchant's real values
    seen = sandbox_state(p, "wechat").applyments.by_code[reg["id"]].decrypted
    assert seen["mobile_phone"] == "13800000000"
    assert seen["account_number"] == "6230910000000000001"
    assert seen["contact_email"] == "zhangsan@example.com"

    await decide(p, "wechat", reg["id"], "verify")
    await rounds(p)
    reg = await current(p, "wechat")
    assert reg["state"] == "NEEDS_ACTION"
    assert reg["action_url"]
    assert reg["sub_merchant_id"] is None

    await decide(p, "wechat", reg["id"], "approve")
    await rounds(p)
    reg = await current(p, "wechat")
    expected = sandbox_state(p, "wechat").applyments.by_code[reg["id"]].sub_mchid
    assert reg["state"] == "ACTIVE"
    assert reg["sub_merchant_id"] == expected
    mine = (await p.call("GET", "/api/v1/onboarding")).json()["data"]
    assert {r["channel"]: (r["state"], r["sub_merchant_id"]) for r in mine}["wechat"] == (
        "ACTIVE", expected)


@pytest.mark.parametrize("channel", ["wechat", "alipay", "unionpay", "ecny", "bankpay"])
async def test_rejected_then_resubmitted_then_approved(platform: Platform, channel: str) -> None:
    p = platform
    await supplied(p)
    first = await current(p, channel)
    assert first["state"] == "UNDER_REVIEW"
    await decide(p, channel, first["id"], "reject", "营业执照照片模糊")
    await rounds(p)
    first = await current(p, channel)
    assert first["state"] == "REJECTED"
    assert "营业执照照片模糊" in first["reason"]
    # rejected is final for that version: it cannot be suspended
    refused = await p.http.post(f"/ops/v1/onboarding/registrations/{first['id']}/suspend",
                                json={"reason": "x"}, headers=OPS)
    assert refused.status_code == 409
    assert refused.json()["code"] == "REGISTRATION_STATE_INVALID"

    resp = await p.http.post(f"/ops/v1/onboarding/registrations/{first['id']}/resubmit",
                             headers=OPS)
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert second["version"] == 2
    assert second["state"] == "PENDING"
    again = await p.http.post(f"/ops/v1/onboarding/registrations/{first['id']}/resubmit",
                              headers=OPS)
    assert again.status_code == 409  # only the latest, rejected one is resubmitted
    await rounds(p)
    assert (await current(p, channel))["state"] == "UNDER_REVIEW"
    await decide(p, channel, second["id"], "approve")
    await rounds(p)
    regs = await registrations(p, channel)
    assert [(r["version"], r["state"]) for r in regs] == [(1, "REJECTED"), (2, "ACTIVE")]
    assert regs[1]["sub_merchant_id"]


async def test_payments_refused_before_active_and_accepted_after(platform: Platform) -> None:
    p = platform
    p.settings.onboarding_required = True
    await supplied(p)
    refused = await p.order(channel="wechat")
    assert refused.status_code == 403
    assert refused.json()["code"] == "CHANNEL_NOT_REGISTERED"
    reg = await current(p, "wechat")
    await decide(p, "wechat", reg["id"], "approve")
    await rounds(p)
    accepted = await p.order(channel="wechat")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "PAYING"
    # suspended by the bank: refused again, then resumed
    resp = await p.http.post(f"/ops/v1/onboarding/registrations/{reg['id']}/suspend",
                             json={"reason": "投诉调查"}, headers=OPS)
    assert resp.status_code == 200
    assert resp.json()["state"] == "SUSPENDED"
    assert (await p.order(channel="wechat")).json()["code"] == "CHANNEL_NOT_REGISTERED"
    resp = await p.http.post(f"/ops/v1/onboarding/registrations/{reg['id']}/resume",
                             json={"reason": "调查结束"}, headers=OPS)
    assert resp.json()["state"] == "ACTIVE"
    assert (await p.order(channel="wechat")).status_code == 200
    # still under review at the bank's own channel: refused there while required
    assert (await current(p, "bankpay"))["state"] == "UNDER_REVIEW"
    assert (await p.order(channel="bankpay")).json()["code"] == "CHANNEL_NOT_REGISTERED"


async def test_single_merchant_mode_pays_without_registration(platform: Platform) -> None:
    assert platform.settings.onboarding_required is False
    resp = await platform.order(channel="wechat")
    assert resp.status_code == 200, resp.text


async def test_a_new_settlement_account_re_registers(platform: Platform) -> None:
    p = platform
    await supplied(p)
    v1 = await approve_all(p, "wechat")
    assert v1["state"] == "ACTIVE"
    await merchants.change_settlement_account(
        p.db, merchant_id=p.merchant_id, settlement_account="6222020000000000002",
        settlement_account_name="付了码演示商户", operator="ops.li")
    await rounds(p)
    regs = await registrations(p, "wechat")
    assert [(r["version"], r["state"]) for r in regs] == [(1, "ACTIVE"), (2, "UNDER_REVIEW")]
    seen = sandbox_state(p, "wechat").applyments.by_code[regs[1]["id"]].decrypted
    assert seen["account_number"] == "6222020000000000002"
    v2 = await approve_all(p, "wechat")
    regs = await registrations(p, "wechat")
    assert [(r["version"], r["state"]) for r in regs] == [(1, "SUPERSEDED"), (2, "ACTIVE")]
    assert v2["sub_merchant_id"]


async def test_a_new_name_re_registers_and_the_same_profile_does_not(platform: Platform) -> None:
    p = platform
    await supplied(p)
    await approve_all(p, "alipay")
    # the same profile announced again: nothing new
    async with p.db.transaction() as s:
        publish(s, "merchant.profile_changed", {"merchant_id": p.merchant_id})
    await rounds(p)
    assert len(await registrations(p, "alipay")) == 1
    # merchants has no rename use case yet: the row changes as one would, with its event
    async with p.db.transaction() as s:
        m = await s.get(Merchant, p.merchant_id)
        assert m is not None
        m.name = "付了码演示商户（新名）"
        publish(s, "merchant.profile_changed", {"merchant_id": p.merchant_id})
    await rounds(p)
    regs = await registrations(p, "alipay")
    assert [(r["version"], r["state"]) for r in regs] == [(1, "ACTIVE"), (2, "UNDER_REVIEW")]
    indirect = sandbox_state(p, "alipay").indirect.by_external[regs[1]["id"]]
    assert indirect.name == "付了码演示商户（新名）"


async def test_unionpay_registers_in_the_acquirer_form_with_a_verification_step(
        platform: Platform) -> None:
    p = platform
    await supplied(p)
    reg = await current(p, "unionpay")
    assert reg["state"] == "UNDER_REVIEW"
    await decide(p, "unionpay", reg["id"], "verify")
    await rounds(p)
    reg = await current(p, "unionpay")
    assert reg["state"] == "NEEDS_ACTION"
    assert reg["reason"]
    await decide(p, "unionpay", reg["id"], "approve")
    await rounds(p)
    reg = await current(p, "unionpay")
    assert reg["state"] == "ACTIVE"
    # 15 digits: prefix, the area and MCC the merchant was registered with, a sequence
    assert reg["sub_merchant_id"].startswith("89833015812")
    assert len(reg["sub_merchant_id"]) == 15


async def test_the_bank_verifies_the_settlement_account_before_registering(
        platform: Platform) -> None:
    p = platform
    await rounds(p)
    reg = await current(p, "bankpay")
    assert reg["state"] == "UNDER_REVIEW"
    await decide(p, "bankpay", reg["id"], "verify")
    await rounds(p)
    reg = await current(p, "bankpay")
    assert reg["state"] == "NEEDS_ACTION"
    assert "验证金额" in reg["reason"]
    await decide(p, "bankpay", reg["id"], "approve")
    await rounds(p)
    reg = await current(p, "bankpay")
    assert reg["state"] == "ACTIVE"
    assert reg["sub_merchant_id"].startswith("BKM")


async def test_the_cashier_offers_only_channels_the_merchant_is_registered_at(
        platform: Platform) -> None:
    p = platform
    p.settings.onboarding_required = True
    await supplied(p)
    wechat_ua = {"User-Agent": "Mozilla/5.0 (iPhone) Mobile/15E148 MicroMessenger/8.0.47"}
    page = await p.http.get("/pay/q/DEMO000001", headers=wechat_ua)
    assert page.status_code == 200
    assert "请使用以下应用扫码" in page.text
    assert "微信" not in page.text  # not offered: the merchant is not registered there yet
    await approve_all(p, "wechat")
    page = await p.http.get("/pay/q/DEMO000001", headers=wechat_ua)
    assert page.status_code == 302  # offered: on to WeChat's silent authorisation
