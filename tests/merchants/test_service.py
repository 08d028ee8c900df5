"""Merchant use cases against every database this machine offers (fixture `db`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from fulema.core import crypto
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import OutboxEvent
from fulema.merchants import service
from fulema.merchants.domain import PLATE_ALPHABET, MerchantStatus, TerminalKind
from fulema.merchants.models import Merchant, MerchantEvent
from tests.merchants.factories import (
    OPERATOR,
    active_with_store,
    application,
    applied,
    licence_no,
    merchant_in,
    serial,
)

S = MerchantStatus


async def outbox(db: Database) -> list[OutboxEvent]:
    async with db.transaction() as s:
        return list(await s.scalars(select(OutboxEvent).where(OutboxEvent.topic.like("merchant.%"))
                                    .order_by(OutboxEvent.created_at, OutboxEvent.id)))


async def count(db: Database, model: Any) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def fails(code: ErrorCode, coro: Any) -> FulemaError:
    with pytest.raises(FulemaError) as err:
        await coro
    assert err.value.code is code, err.value
    return err.value


async def test_the_whole_lifecycle_with_its_audit_trail_and_events(db: Database) -> None:
    m = await applied(db, name="老王面馆")
    assert m.status == "APPLIED"
    assert m.id.startswith("mch_")
    op = OPERATOR
    m = await service.reject(db, merchant_id=m.id, reason="settlement name differs", operator=op)
    assert (m.status, m.reject_reason) == ("REJECTED", "settlement name differs")
    m = await service.resubmit(db, merchant_id=m.id, operator=op, settlement_account_name="老王面馆")
    assert (m.status, m.reject_reason, m.settlement_account_name) == ("APPLIED", None, "老王面馆")
    assert m.name == "老王面馆"  # fields not corrected are kept
    await service.approve(db, merchant_id=m.id, operator=op)
    await service.activate(db, merchant_id=m.id, operator=op)
    m = await service.freeze(db, merchant_id=m.id, reason="chargebacks", operator=op)
    assert (m.status, m.freeze_reason) == ("FROZEN", "chargebacks")
    m = await service.unfreeze(db, merchant_id=m.id, operator=op)
    assert (m.status, m.freeze_reason) == ("ACTIVE", None)
    m = await service.close(db, merchant_id=m.id, operator=op, reason="shop closed")
    assert m.status == "CLOSED"

    events = await service.list_events(db, merchant_id=m.id)
    assert [(e.seq, e.action, e.from_status, e.to_status) for e in events] == [
        (1, "apply", None, "APPLIED"), (2, "reject", "APPLIED", "REJECTED"),
        (3, "resubmit", "REJECTED", "APPLIED"), (4, "approve", "APPLIED", "APPROVED"),
        (5, "activate", "APPROVED", "ACTIVE"), (6, "freeze", "ACTIVE", "FROZEN"),
        (7, "unfreeze", "FROZEN", "ACTIVE"), (8, "close", "ACTIVE", "CLOSED")]
    assert events[1].reason == "settlement name differs"
    assert {e.operator for e in events} == {op}
    published = await outbox(db)
    assert [e.topic for e in published] == [f"merchant.{e.action}" for e in events]
    assert [e.payload["seq"] for e in published] == [e.seq for e in events]
    assert published[5].payload == {"merchant_id": m.id, "action": "freeze", "seq": 6,
                                    "from_status": "ACTIVE", "to_status": "FROZEN",
                                    "reason": "chargebacks", "operator": op}


async def test_an_illegal_transition_changes_and_records_nothing(db: Database) -> None:
    m = await applied(db)
    before = (await count(db, MerchantEvent), await count(db, OutboxEvent))
    err = await fails(ErrorCode.ILLEGAL_STATE_TRANSITION,
                      service.activate(db, merchant_id=m.id, operator=OPERATOR))
    assert "APPLIED" in err.message
    assert "activate" in err.message
    await fails(ErrorCode.VALIDATION_ERROR,
                service.freeze(db, merchant_id=m.id, reason=" ", operator=OPERATOR))
    await service.close(db, merchant_id=m.id, operator=OPERATOR)
    for action in (service.approve, service.activate, service.unfreeze, service.close):
        await fails(ErrorCode.ILLEGAL_STATE_TRANSITION, action(db, merchant_id=m.id, operator=OPERATOR))
    await fails(ErrorCode.ILLEGAL_STATE_TRANSITION,
                service.resubmit(db, merchant_id=m.id, operator=OPERATOR, name="Reopened"))
    assert (await count(db, MerchantEvent), await count(db, OutboxEvent)) == (before[0] + 1,
                                                                             before[1] + 1)
    assert (await service.check_merchant(db, merchant_id=m.id)).status == "CLOSED"
    await fails(ErrorCode.MERCHANT_NOT_FOUND,
                service.approve(db, merchant_id="mch_nobody", operator=OPERATOR))


async def test_one_licence_one_merchant_even_when_two_apply_at_once(db: Database) -> None:
    licence = licence_no()
    await applied(db, licence_no=licence)
    await fails(ErrorCode.DUPLICATE_LICENCE, applied(db, licence_no=licence.lower()))

    racing = licence_no()
    results = await asyncio.gather(applied(db, licence_no=racing), applied(db, licence_no=racing),
                                   return_exceptions=True)
    ok = [r for r in results if isinstance(r, service.MerchantView)]
    refused = [r for r in results if isinstance(r, FulemaError)]
    assert len(ok) == 1, results
    assert [r.code for r in refused] == [ErrorCode.DUPLICATE_LICENCE]
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).where(Merchant.licence_no == racing)) == 1
    assert await count(db, Merchant) == 2
    assert await count(db, MerchantEvent) == 2  # the loser left no audit row behind

    rejected = await merchant_in(db, S.REJECTED)
    await fails(ErrorCode.DUPLICATE_LICENCE, service.resubmit(
        db, merchant_id=rejected.id, licence_no=licence, operator=OPERATOR))
    assert (await service.check_merchant(db, merchant_id=rejected.id)).status == "REJECTED"


async def test_bad_fields_are_refused_before_anything_is_written(db: Database) -> None:
    for bad in ({"licence_no": "91110000802100433C"}, {"contact_phone": "12345"},
                {"mcc": "58"}, {"settlement_account": "abc"}):
        await fails(ErrorCode.VALIDATION_ERROR,
                    service.apply_merchant(db, operator=OPERATOR, **application(**bad)))
    assert await count(db, Merchant) == 0
    assert await outbox(db) == []


async def test_check_can_pay_for_each_status(db: Database) -> None:
    expected = {S.APPLIED: ErrorCode.MERCHANT_NOT_ACTIVE, S.APPROVED: ErrorCode.MERCHANT_NOT_ACTIVE,
                S.REJECTED: ErrorCode.MERCHANT_NOT_ACTIVE, S.FROZEN: ErrorCode.MERCHANT_FROZEN,
                S.CLOSED: ErrorCode.MERCHANT_CLOSED}
    for status in S:
        m = await merchant_in(db, status)
        assert m.status == status.value
        if status is S.ACTIVE:
            snap = await service.check_can_pay(db, merchant_id=m.id)
            assert snap == service.MerchantSnapshot(id=m.id, name=m.name, short_name=m.short_name,
                                                    status="ACTIVE", mcc=m.mcc)
        else:
            await fails(expected[status], service.check_can_pay(db, merchant_id=m.id))
    await fails(ErrorCode.MERCHANT_NOT_FOUND, service.check_can_pay(db, merchant_id="mch_x"))


async def test_stores_and_terminals(db: Database) -> None:
    mid, store_id = await active_with_store(db)
    other_mid, other_store = await active_with_store(db)
    assert (await service.get_store(db, merchant_id=mid, store_id=store_id)).name == "西湖店"
    await fails(ErrorCode.STORE_NOT_FOUND,
                service.get_store(db, merchant_id=mid, store_id=other_store))

    till = await service.add_terminal(db, merchant_id=mid, store_id=store_id,
                                      kind=TerminalKind.CASHIER, serial_no="TILL-1", operator=OPERATOR)
    speaker = await service.add_terminal(db, merchant_id=mid, store_id=store_id,
                                         kind=TerminalKind.SPEAKER, serial_no="SPK-1",
                                         speaker_id="spk_001", operator=OPERATOR)
    assert (till.kind, speaker.speaker_id, speaker.active) == ("CASHIER", "spk_001", True)
    # the same device cannot be bound twice, here or at another merchant
    await fails(ErrorCode.DUPLICATE_TERMINAL, service.add_terminal(
        db, merchant_id=other_mid, store_id=other_store, kind=TerminalKind.CASHIER,
        serial_no="TILL-1", operator=OPERATOR))
    await fails(ErrorCode.DUPLICATE_TERMINAL, service.add_terminal(
        db, merchant_id=mid, store_id=store_id, kind=TerminalKind.SPEAKER, serial_no="SPK-2",
        speaker_id="spk_001", operator=OPERATOR))
    await fails(ErrorCode.VALIDATION_ERROR, service.add_terminal(
        db, merchant_id=mid, store_id=store_id, kind=TerminalKind.SPEAKER, serial_no="SPK-3",
        operator=OPERATOR))
    await fails(ErrorCode.STORE_NOT_FOUND, service.add_terminal(
        db, merchant_id=mid, store_id=other_store, kind=TerminalKind.POS, serial_no=serial(),
        operator=OPERATOR))
    # a POS may share a serial with a cashier: serials are unique per kind
    await service.add_terminal(db, merchant_id=mid, store_id=store_id, kind=TerminalKind.POS,
                               serial_no="TILL-1", operator=OPERATOR)
    # once disabled, a device can move to another merchant's store
    off = await service.disable_terminal(db, merchant_id=mid, store_id=store_id,
                                         terminal_id=speaker.id, operator=OPERATOR)
    assert off.active is False
    moved = await service.add_terminal(db, merchant_id=other_mid, store_id=other_store,
                                       kind=TerminalKind.SPEAKER, serial_no="SPK-1",
                                       speaker_id="spk_001", operator=OPERATOR)
    assert moved.store_id == other_store
    await fails(ErrorCode.TERMINAL_NOT_FOUND, service.disable_terminal(
        db, merchant_id=mid, store_id=store_id, terminal_id=moved.id, operator=OPERATOR))

    plate = await service.create_plate(db, merchant_id=mid, store_id=store_id, operator=OPERATOR)
    await service.disable_store(db, merchant_id=mid, store_id=store_id, operator=OPERATOR)
    detail = await service.get_merchant(db, merchant_id=mid)
    assert [t.active for t in detail.terminals] == [False, False, False]
    assert [p.status for p in detail.plates] == ["DISABLED"]
    await fails(ErrorCode.STORE_NOT_FOUND, service.get_store(db, merchant_id=mid, store_id=store_id))
    await fails(ErrorCode.PLATE_NOT_FOUND, service.get_plate(db, code=plate.code))
    await fails(ErrorCode.STORE_NOT_FOUND, service.add_terminal(
        db, merchant_id=mid, store_id=store_id, kind=TerminalKind.POS, serial_no=serial(),
        operator=OPERATOR))


async def test_app_credentials_show_the_secret_once_and_rotate(db: Database) -> None:
    mid, _ = await active_with_store(db)
    key = crypto.generate_rsa_key()
    issued = await service.create_app_credential(
        db, merchant_id=mid, operator=OPERATOR, rsa_public_key_pem=crypto.public_key_pem(key),
        notify_url="https://shop.example/notify")
    app_id = issued.app.app_id
    assert app_id.startswith("app_")
    assert len(issued.secret) >= 32
    cred = await service.get_app_credential(db, app_id=app_id)
    assert cred == service.AppCredential(app_id=app_id, merchant_id=mid, secret=issued.secret,
                                         rsa_public_key_pem=issued.app.rsa_public_key_pem,
                                         notify_url="https://shop.example/notify", active=True)
    assert crypto.load_public_key(cred.rsa_public_key_pem or "").key_size == 2048
    assert await service.default_app_for_merchant(db, merchant_id=mid) == cred

    rotated = await service.rotate_secret(db, merchant_id=mid, app_id=app_id, operator=OPERATOR)
    assert rotated.secret != issued.secret
    assert (await service.get_app_credential(db, app_id=app_id)).secret == rotated.secret
    # the secret never leaves through the read side, the audit log or the outbox
    detail = await service.get_merchant(db, merchant_id=mid)
    trail = await service.list_events(db, merchant_id=mid)
    for secret in (issued.secret, rotated.secret):
        assert secret not in repr(detail)
        assert secret not in repr(trail)
        assert all(secret not in repr(e.payload) for e in await outbox(db))

    await service.disable_app(db, merchant_id=mid, app_id=app_id, operator=OPERATOR)
    await fails(ErrorCode.APP_NOT_FOUND, service.get_app_credential(db, app_id=app_id))
    await fails(ErrorCode.ILLEGAL_STATE_TRANSITION,
                service.rotate_secret(db, merchant_id=mid, app_id=app_id, operator=OPERATOR))
    assert await service.default_app_for_merchant(db, merchant_id=mid) is None
    await fails(ErrorCode.APP_NOT_FOUND, service.get_app_credential(db, app_id="app_nobody"))

    other, _ = await active_with_store(db)
    await fails(ErrorCode.NOT_FOUND,
                service.rotate_secret(db, merchant_id=other, app_id=app_id, operator=OPERATOR))
    small = crypto.public_key_pem(crypto.generate_rsa_key(1024))
    for pem in ("not a key", small, crypto.private_key_pem(key)):
        await fails(ErrorCode.VALIDATION_ERROR, service.create_app_credential(
            db, merchant_id=mid, operator=OPERATOR, rsa_public_key_pem=pem))
    await fails(ErrorCode.VALIDATION_ERROR, service.create_app_credential(
        db, merchant_id=mid, operator=OPERATOR, notify_url="ftp://x"))
    assert len((await service.get_merchant(db, merchant_id=mid)).apps) == 1


async def test_fee_rates(db: Database) -> None:
    mid, _ = await active_with_store(db)
    assert {c: await service.fee_rate_bps(db, merchant_id=mid, channel=c)
            for c in ("wechat", "alipay", "unionpay", "ecny", "bankpay")} == {
        "wechat": 38, "alipay": 38, "unionpay": 38, "ecny": 38, "bankpay": 0}
    rate = await service.set_fee_rate(db, merchant_id=mid, channel="wechat", bps=25, operator=OPERATOR)
    assert (rate.bps, rate.is_default) == (25, False)
    await service.set_fee_rate(db, merchant_id=mid, channel="wechat", bps=30, operator=OPERATOR)
    await service.set_fee_rate(db, merchant_id=mid, channel="bankpay", bps=1000, operator=OPERATOR)
    assert await service.fee_rate_bps(db, merchant_id=mid, channel="wechat") == 30
    assert await service.fee_rate_bps(db, merchant_id=mid, channel="bankpay") == 1000
    assert await service.fee_rate_bps(db, merchant_id=mid, channel="alipay") == 38
    for channel, bps in (("wechat", -1), ("wechat", 1001), ("paypal", 10)):
        await fails(ErrorCode.VALIDATION_ERROR, service.set_fee_rate(
            db, merchant_id=mid, channel=channel, bps=bps, operator=OPERATOR))
    await fails(ErrorCode.MERCHANT_NOT_FOUND,
                service.fee_rate_bps(db, merchant_id="mch_nobody", channel="wechat"))
    trail = [e for e in await service.list_events(db, merchant_id=mid) if e.action == "set_fee_rate"]
    assert [e.reason for e in trail] == ["wechat 38 -> 25 bps", "wechat 25 -> 30 bps",
                                         "bankpay 0 -> 1000 bps"]
    detail = await service.get_merchant(db, merchant_id=mid)
    assert [(r.channel, r.bps, r.is_default) for r in detail.fee_rates] == [
        ("wechat", 30, False), ("alipay", 38, True), ("unionpay", 38, True), ("ecny", 38, True),
        ("bankpay", 1000, False)]


async def test_plates(db: Database) -> None:
    mid, store_id = await active_with_store(db)
    other_mid, other_store = await active_with_store(db)
    plate = await service.create_plate(db, merchant_id=mid, store_id=store_id, operator=OPERATOR)
    assert len(plate.code) == 10
    assert set(plate.code) <= set(PLATE_ALPHABET)
    second = await service.create_plate(db, merchant_id=mid, store_id=store_id, operator=OPERATOR)
    assert second.code != plate.code
    info = await service.get_plate(db, code=plate.code)
    assert info == service.PlateInfo(code=plate.code, merchant_id=mid, merchant_name="杭州小笼包餐饮店",
                                     store_id=store_id, store_name="西湖店")
    await fails(ErrorCode.STORE_NOT_FOUND, service.create_plate(
        db, merchant_id=mid, store_id=other_store, operator=OPERATOR))
    off = await service.disable_plate(db, code=plate.code, operator=OPERATOR)
    assert off.status == "DISABLED"
    await fails(ErrorCode.PLATE_NOT_FOUND, service.get_plate(db, code=plate.code))
    assert (await service.get_plate(db, code=second.code)).code == second.code
    await fails(ErrorCode.PLATE_NOT_FOUND, service.disable_plate(db, code="NOPE", operator=OPERATOR))
    await fails(ErrorCode.PLATE_NOT_FOUND, service.get_plate(db, code="NOPE"))
    assert other_mid != mid


async def test_a_closed_merchant_cannot_be_set_up(db: Database) -> None:
    mid, store_id = await active_with_store(db)
    await service.close(db, merchant_id=mid, operator=OPERATOR)
    before = await count(db, MerchantEvent)
    calls = [
        service.add_store(db, merchant_id=mid, name="x", address="y", operator=OPERATOR),
        service.add_terminal(db, merchant_id=mid, store_id=store_id, kind=TerminalKind.POS,
                             serial_no=serial(), operator=OPERATOR),
        service.create_app_credential(db, merchant_id=mid, operator=OPERATOR),
        service.set_fee_rate(db, merchant_id=mid, channel="wechat", bps=10, operator=OPERATOR),
        service.create_plate(db, merchant_id=mid, store_id=store_id, operator=OPERATOR),
    ]
    for call in calls:
        await fails(ErrorCode.MERCHANT_CLOSED, call)
    assert await count(db, MerchantEvent) == before


async def test_list_merchants_by_cursor(db: Database) -> None:
    made = [await applied(db) for _ in range(5)]
    await service.approve(db, merchant_id=made[1].id, operator=OPERATOR)
    first = await service.list_merchants(db, limit=2)
    assert [m.id for m in first.data] == [made[0].id, made[1].id]
    assert first.has_more
    rest = await service.list_merchants(db, limit=10, starting_after=first.data[-1].id)
    assert [m.id for m in rest.data] == [m.id for m in made[2:]]
    assert not rest.has_more
    approved = await service.list_merchants(db, status=S.APPROVED)
    assert [m.id for m in approved.data] == [made[1].id]
    await fails(ErrorCode.VALIDATION_ERROR, service.list_merchants(db, limit=0))


async def test_audit_row_and_event_commit_together(db: Database) -> None:
    """Every audited change wrote exactly one outbox event in its transaction, and a change
    that failed halfway (a duplicate device) wrote neither."""
    mid, store_id = await active_with_store(db)
    await service.add_terminal(db, merchant_id=mid, store_id=store_id, kind=TerminalKind.POS,
                               serial_no="POS-9", operator=OPERATOR)
    await fails(ErrorCode.DUPLICATE_TERMINAL, service.add_terminal(
        db, merchant_id=mid, store_id=store_id, kind=TerminalKind.POS, serial_no="POS-9",
        operator=OPERATOR))
    await service.create_app_credential(db, merchant_id=mid, operator=OPERATOR)
    await service.set_fee_rate(db, merchant_id=mid, channel="alipay", bps=20, operator=OPERATOR)
    trail = await service.list_events(db, merchant_id=mid)
    published = await outbox(db)
    assert [e.action for e in trail] == ["apply", "approve", "activate", "add_store",
                                         "add_terminal", "create_app", "set_fee_rate"]
    assert [(p.payload["merchant_id"], p.payload["seq"], p.topic) for p in published] == [
        (mid, e.seq, f"merchant.{e.action}") for e in trail]
    assert published[-1].payload["bps"] == 20


async def test_the_demo_merchant_is_created_once(db: Database, settings: Settings) -> None:
    first = await service.onboard_demo_merchant(db, settings=settings)
    again = await service.onboard_demo_merchant(db, settings=settings)
    assert first == again
    assert (first.app_id, first.secret, first.plate_code) == ("app_demo", "demo-secret-change-me",
                                                              "DEMO000001")
    assert first.plate_url == "http://testserver/pay/q/DEMO000001"
    snap = await service.check_can_pay(db, merchant_id=first.merchant_id)
    assert (snap.name, snap.status) == ("付了码演示商户", "ACTIVE")
    plate = await service.get_plate(db, code="DEMO000001")
    assert (plate.merchant_id, plate.store_id) == (first.merchant_id, first.store_id)
    assert (await service.get_app_credential(db, app_id="app_demo")).secret == first.secret
    detail = await service.get_merchant(db, merchant_id=first.merchant_id)
    assert sorted(t.kind for t in detail.terminals) == ["CASHIER", "SPEAKER"]
    assert await count(db, Merchant) == 1
    with pytest.raises(RuntimeError, match="FULEMA_SEED_DEMO"):
        await service.onboard_demo_merchant(
            db, settings=settings.model_copy(update={"environment": "production"}))


async def test_a_settlement_hold_keeps_the_merchant_paying_and_is_recorded(db: Database) -> None:
    m = await merchant_in(db, S.ACTIVE)
    held = await service.hold_settlement(db, merchant_id=m.id, reason="risk case 17",
                                         operator=OPERATOR)
    assert held.settlement_hold_reason == "risk case 17"
    assert held.status == S.ACTIVE.value
    released = await service.release_settlement(db, merchant_id=m.id, operator=OPERATOR)
    assert released.settlement_hold_reason is None
    actions = [e.action for e in await service.list_events(db, merchant_id=m.id)]
    assert actions[-2:] == ["settlement_hold", "settlement_release"]
    assert [e.topic for e in await outbox(db)][-2:] == ["merchant.settlement_hold",
                                                        "merchant.settlement_release"]


async def test_a_settlement_hold_needs_a_reason(db: Database) -> None:
    m = await merchant_in(db, S.ACTIVE)
    with pytest.raises(FulemaError) as caught:
        await service.hold_settlement(db, merchant_id=m.id, reason="  ", operator=OPERATOR)
    assert caught.value.code is ErrorCode.VALIDATION_ERROR
