"""A merchant's own in-portal notices over the signed API (/api/v1/notices): it lists what names
it, newest first, by cursor, and marks them read; another merchant's notice, the operators' own
and an unknown id are all NOTICE_NOT_FOUND and stay unread; bad query input is refused only
after the signature, with VALIDATION_ERROR."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from fulema.core.clock import clock
from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.messaging import notices
from tests.web.portal.kit import Kit
from tests.web.portal.kit import cheap_hashes as cheap_hashes
from tests.web.portal.kit import kit as kit

OPS = {"Authorization": "Bearer test-operator"}


async def paid_notice(kit: Kit, merchant_id: str, fen: int) -> None:
    """A settlement payout reached the merchant: its notice, as the consumer writes it."""
    await notices.notice_from_event(kit.p.db, Event(
        id=new_id("evt"), topic="settlement.paid",
        payload={"payout_id": new_id("po"), "batch_id": "stb_x", "merchant_id": merchant_id,
                 "amount": fen, "account_masked": "6222****0001", "bank_ref": "B1",
                 "paid_at": clock.now().isoformat()}))
    clock.advance(timedelta(milliseconds=2))  # ids are time-ordered: newest first is defined


async def alert_notice(kit: Kit, merchant_id: str | None, summary: str) -> None:
    payload: dict[str, Any] = {"alert_id": new_id("ral"), "kind": "velocity",
                               "severity": "high", "summary": summary}
    if merchant_id:
        payload["merchant_id"] = merchant_id
    await notices.notice_from_event(kit.p.db, Event(id=new_id("evt"), topic="risk.alert",
                                                    payload=payload))
    clock.advance(timedelta(milliseconds=2))


async def as_a(kit: Kit, method: str, path: str) -> httpx.Response:
    return await kit.p.call(method, path)


async def as_b(kit: Kit, method: str, path: str) -> httpx.Response:
    return await kit.p.call(method, path, app_id=kit.b_app_id, secret=kit.b_secret)


async def test_a_merchant_lists_only_its_own_notices_newest_first(kit: Kit) -> None:
    await paid_notice(kit, kit.merchant_a, 9962)
    await alert_notice(kit, kit.merchant_a, "30 payments in a minute")
    await paid_notice(kit, kit.merchant_b, 100)
    await alert_notice(kit, None, "the operators' own")

    mine = (await as_a(kit, "GET", "/api/v1/notices")).json()
    assert [(n["kind"], n["summary"], n["read_at"]) for n in mine["data"]] == [
        ("velocity", "[high] velocity: 30 payments in a minute", None),
        ("settlement.paid", "结算款 99.62 元已到账", None)]
    assert mine["has_more"] is False
    assert mine["unread_count"] == 2
    assert "merchant_id" not in mine["data"][0]

    theirs = (await as_b(kit, "GET", "/api/v1/notices")).json()
    assert [n["summary"] for n in theirs["data"]] == ["结算款 1.00 元已到账"]
    assert theirs["unread_count"] == 1


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
async def test_pages_by_cursor_cover_every_notice_once_in_order(kit: Kit, limit: int) -> None:
    for fen in range(1, 6):
        await paid_notice(kit, kit.merchant_a, fen)
    await paid_notice(kit, kit.merchant_b, 7)
    seen: list[str] = []
    after = ""
    while True:
        page = (await as_a(kit, "GET", f"/api/v1/notices?limit={limit}{after}")).json()
        assert len(page["data"]) <= limit
        seen += [n["summary"] for n in page["data"]]
        if not page["has_more"]:
            break
        after = f"&starting_after={page['data'][-1]['id']}"
    assert seen == [f"结算款 0.0{fen} 元已到账" for fen in range(5, 0, -1)]


async def test_marking_read_is_once_and_only_for_its_own(kit: Kit) -> None:
    await paid_notice(kit, kit.merchant_a, 9962)
    await paid_notice(kit, kit.merchant_b, 100)
    await alert_notice(kit, None, "the operators' own")
    [a_notice] = (await as_a(kit, "GET", "/api/v1/notices")).json()["data"]
    [b_notice] = (await as_b(kit, "GET", "/api/v1/notices")).json()["data"]
    [ops_notice] = [n for n in (await kit.p.http.get("/ops/v1/messages/notices", headers=OPS)
                                ).json()["data"] if n["merchant_id"] is None]

    read = await as_a(kit, "POST", f"/api/v1/notices/{a_notice['id']}/read")
    assert read.status_code == 200, read.text
    assert read.json()["read_by"] == "app:app_demo"
    assert read.json()["read_at"] is not None
    clock.advance(timedelta(seconds=5))
    again = await as_a(kit, "POST", f"/api/v1/notices/{a_notice['id']}/read")
    assert again.json() == read.json()  # the first reading stands

    after = (await as_a(kit, "GET", "/api/v1/notices?unread=true")).json()
    assert after["data"] == []
    assert after["unread_count"] == 0
    assert len((await as_a(kit, "GET", "/api/v1/notices")).json()["data"]) == 1

    for other in (b_notice["id"], ops_notice["id"], "ntc_nope", "x" * 300):
        refused = await as_a(kit, "POST", f"/api/v1/notices/{other}/read")
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == "NOTICE_NOT_FOUND"
    assert (await as_b(kit, "GET", "/api/v1/notices")).json()["data"][0]["read_at"] is None
    ops_after = (await kit.p.http.get("/ops/v1/messages/notices", headers=OPS)).json()["data"]
    assert ops_notice["id"] in [n["id"] for n in ops_after]  # still unread for operators


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=",
                                   "unread=maybe", "starting_after=" + "n" * 41])
async def test_bad_query_is_refused_with_validation_error(kit: Kit, query: str) -> None:
    await paid_notice(kit, kit.merchant_a, 100)
    answer = await as_a(kit, "GET", f"/api/v1/notices?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "VALIDATION_ERROR"


async def test_unsigned_calls_are_refused_before_the_query_is_read(kit: Kit) -> None:
    await paid_notice(kit, kit.merchant_a, 100)
    [n] = (await as_a(kit, "GET", "/api/v1/notices")).json()["data"]
    for method, path in (("GET", "/api/v1/notices?limit=0"), ("GET", "/api/v1/notices"),
                         ("POST", f"/api/v1/notices/{n['id']}/read")):
        answer = await kit.p.http.request(method, path)
        assert answer.status_code == 401
        assert answer.json()["code"] == "SIGNATURE_MISSING"
    wrong = await kit.p.call("POST", f"/api/v1/notices/{n['id']}/read", secret="not-the-secret")
    assert wrong.json()["code"] == "SIGNATURE_INVALID"
    assert (await as_a(kit, "GET", "/api/v1/notices")).json()["data"][0]["read_at"] is None
