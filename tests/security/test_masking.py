"""Masking: phones and account numbers are masked in every operator answer and broker event;
a finance operator reads one whole only through the audited reveal; searching by phone goes
through its keyed hash; the merchant still gets its payer's id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from fulema.app import create_app
from fulema.core.audit import AuditRecord
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events.outbox import OutboxEvent
from fulema.core.masking import mask_account, mask_fields, mask_phone
from tests.merchants.factories import application

AUTH = {"Authorization": "Bearer test-operator"}
PHONE, ACCOUNT = "13812345678", "6222021234567891234"


# --- the rules --------------------------------------------------------------------------------

def test_the_documented_shapes() -> None:
    assert mask_phone(PHONE) == "138****5678"
    assert mask_account(ACCOUNT) == "6222****1234"
    assert mask_account("12345678") == "****5678"
    assert mask_account("1234") == "****"
    assert mask_phone(None) is None
    assert mask_account(None) is None


# Digit strings built from characters, not `st.from_regex`: compiling hypothesis's lazily
# imported regex module under pytest's assertion rewriter raised CPython 3.11's "AST constructor
# recursion depth mismatch" (python/cpython#106905) in two CI runs in a row.
DIGITS = "0123456789"
MOBILES = st.builds(lambda second, rest: "1" + second + rest, st.sampled_from("3456789"),
                    st.text(DIGITS, min_size=9, max_size=9))


@given(MOBILES)
def test_a_masked_phone_hides_its_middle_four(phone: str) -> None:
    masked = mask_phone(phone)
    assert masked == phone[:3] + "****" + phone[-4:]
    assert phone not in (masked or "")


@given(st.text(DIGITS, min_size=9, max_size=32))
def test_a_masked_account_shows_at_most_eight_digits(number: str) -> None:
    masked = mask_account(number) or ""
    assert sum(c.isdigit() for c in masked) == 8
    assert number not in masked


def test_mask_fields_masks_by_key_name_wherever_it_sits() -> None:
    payload = {"contact_phone": PHONE, "settlement_account": ACCOUNT,
               "settlement_account_name": "王小明", "payer_id": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
               "payer": {"card_no": ACCOUNT, "mobile": PHONE, "account_masked": "6222****1"},
               "items": [{"bank_account": ACCOUNT}]}
    masked = mask_fields(payload)
    text = orjson.dumps(masked).decode()
    assert PHONE not in text
    assert ACCOUNT not in text
    assert masked["settlement_account_name"] == "王小明"
    assert masked["payer_id"] == payload["payer_id"]  # the payer's id is not a phone or card
    assert masked["payer"]["account_masked"] == "6222****1"
    assert payload["contact_phone"] == PHONE  # a copy: the original is untouched


# --- the operator API -------------------------------------------------------------------------

@pytest.fixture
async def http(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"mount_sandbox": False, "enabled_channels": []}),
                     db=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver", headers=AUTH) as client:
        yield client


async def _merchant(http: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    resp = await http.post("/ops/v1/merchants", json=application(
        **{"contact_phone": PHONE, "settlement_account": ACCOUNT, **overrides}))
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_every_merchant_answer_masks_the_account_and_phone(
        http: httpx.AsyncClient, db: Database) -> None:
    created = await _merchant(http)
    mid = created["id"]
    answers = [created,
               (await http.get("/ops/v1/merchants")).json(),
               (await http.get(f"/ops/v1/merchants/{mid}")).json(),
               (await http.post(f"/ops/v1/merchants/{mid}/reject",
                                json={"reason": "blurred"})).json(),
               (await http.post(f"/ops/v1/merchants/{mid}/resubmit",
                                json={"contact_phone": "13900001111"})).json()]
    for answer in answers:
        text = orjson.dumps(answer).decode()
        assert PHONE not in text
        assert ACCOUNT not in text
        assert "13900001111" not in text
    assert created["contact_phone"] == "138****5678"
    assert created["settlement_account"] == "6222****1234"
    assert answers[-1]["contact_phone"] == "139****1111"
    # and nothing the merchant context published carries them either
    async with db.transaction() as s:
        payloads = [orjson.dumps(e.payload).decode() for e in await s.scalars(select(OutboxEvent))]
    assert payloads
    assert not [p for p in payloads if PHONE in p or ACCOUNT in p or "13900001111" in p]


async def test_finance_reveals_a_field_whole_and_the_read_is_audited(
        http: httpx.AsyncClient, db: Database) -> None:
    mid = (await _merchant(http))["id"]
    resp = await http.post(f"/ops/v1/merchants/{mid}/reveal",
                           json={"fields": ["settlement_account"],
                                 "reason": "payout 2026-11-25 returned by the core system"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["settlement_account"] == ACCOUNT
    assert body["contact_phone"] is None  # not asked for, not shown
    async with db.transaction() as s:
        record = await s.scalar(select(AuditRecord).where(AuditRecord.id == body["audit_id"]))
    assert record is not None
    assert (record.actor, record.action, record.target_id) == ("bootstrap-admin",
                                                               "merchant.reveal", mid)
    assert record.detail["fields"] == ["settlement_account"]
    assert "returned by the core system" in record.detail["reason"]
    assert ACCOUNT not in orjson.dumps(record.detail).decode()  # the trail holds no full value


async def test_reveal_refuses_bad_requests(http: httpx.AsyncClient) -> None:
    mid = (await _merchant(http))["id"]
    for body in ({"fields": ["legal_person"], "reason": "x"}, {"fields": [], "reason": "x"},
                 {"fields": ["contact_phone"]}, {"fields": ["contact_phone"], "reason": ""}):
        resp = await http.post(f"/ops/v1/merchants/{mid}/reveal", json=body)
        assert (resp.status_code, resp.json()["code"]) == (400, "VALIDATION_ERROR"), body
    resp = await http.post("/ops/v1/merchants/mch_nope/reveal",
                           json={"fields": ["contact_phone"], "reason": "call back"})
    assert (resp.status_code, resp.json()["code"]) == (404, "MERCHANT_NOT_FOUND")
    resp = await http.post(f"/ops/v1/merchants/{mid}/reveal", headers={"Authorization": ""},
                           json={"fields": ["contact_phone"], "reason": "call back"})
    assert (resp.status_code, resp.json()["code"]) == (401, "UNAUTHORIZED")


async def test_operators_find_a_merchant_by_phone_through_its_hash(
        http: httpx.AsyncClient) -> None:
    mine = (await _merchant(http))["id"]
    await _merchant(http, contact_phone="13700000000")
    resp = await http.post("/ops/v1/merchants/search", json={"contact_phone": PHONE})
    assert resp.status_code == 200, resp.text
    assert [m["id"] for m in resp.json()["data"]] == [mine]
    assert resp.json()["data"][0]["contact_phone"] == "138****5678"
    none = await http.post("/ops/v1/merchants/search", json={"contact_phone": "13600000000"})
    assert none.json()["data"] == []
    bad = await http.post("/ops/v1/merchants/search", json={"contact_phone": "12"})
    assert (bad.status_code, bad.json()["code"]) == (400, "VALIDATION_ERROR")
