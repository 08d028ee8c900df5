"""The operator API over HTTP, as the bank's console calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fulema.app import create_app
from fulema.core import crypto
from fulema.core.config import Settings
from fulema.core.db import Database
from tests.merchants.factories import application, licence_no

AUTH = {"Authorization": "Bearer test-operator"}


@pytest.fixture
async def http(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # No channels: operators' endpoints use none, and building them costs a second of RSA
    # key generation per test on this small machine.
    app = create_app(settings.model_copy(update={"mount_sandbox": False, "enabled_channels": []}),
                     db=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 headers=AUTH) as client:
        yield client


async def listed(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    resp = await http.get("/ops/v1/merchants", params={"limit": 100})
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def detail(http: httpx.AsyncClient, mid: str) -> dict[str, Any]:
    resp = await http.get(f"/ops/v1/merchants/{mid}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def events(http: httpx.AsyncClient, mid: str) -> list[str]:
    resp = await http.get(f"/ops/v1/merchants/{mid}/events")
    return [e["action"] for e in resp.json()["data"]]


def expect(resp: httpx.Response, status: int, code: str) -> None:
    assert (resp.status_code, resp.json().get("code")) == (status, code), resp.text
    assert resp.json()["request_id"]


async def active_merchant(http: httpx.AsyncClient) -> tuple[str, str]:
    resp = await http.post("/ops/v1/merchants", json=application())
    assert resp.status_code == 201, resp.text
    mid = resp.json()["id"]
    for action in ("approve", "activate"):
        assert (await http.post(f"/ops/v1/merchants/{mid}/{action}")).status_code == 200
    store = await http.post(f"/ops/v1/merchants/{mid}/stores",
                            json={"name": "西湖店", "address": "杭州市西湖区 1 号"})
    assert store.status_code == 201, store.text
    return mid, store.json()["id"]


async def test_every_operator_endpoint_needs_the_token(http: httpx.AsyncClient) -> None:
    mid, store_id = await active_merchant(http)
    calls = [("GET", "/ops/v1/merchants", None), ("GET", f"/ops/v1/merchants/{mid}", None),
             ("POST", "/ops/v1/merchants", application()),
             ("POST", "/ops/v1/merchants", b"{not json"),
             ("POST", f"/ops/v1/merchants/{mid}/freeze", {"reason": "x"}),
             ("POST", f"/ops/v1/merchants/{mid}/close", None),
             ("POST", f"/ops/v1/merchants/{mid}/stores", {"name": "x", "address": "y"}),
             ("POST", f"/ops/v1/merchants/{mid}/apps", {}),
             ("PUT", f"/ops/v1/merchants/{mid}/fee-rates/wechat", {"bps": 1}),
             ("POST", f"/ops/v1/merchants/{mid}/plates", {"store_id": store_id}),
             ("GET", "/ops/v1/plates/DEMO000001.png", None)]
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"},
                    {"Authorization": "Basic dGVzdC1vcGVyYXRvcg=="}):
        for method, path, body in calls:
            content = body if isinstance(body, bytes) else None
            resp = await http.request(method, path, headers=headers, content=content,
                                      json=None if content is not None else body)
            expect(resp, 401, "UNAUTHORIZED")
    assert len(await listed(http)) == 1
    after = await detail(http, mid)
    assert (after["status"], len(after["stores"]), after["apps"], after["plates"]) == (
        "ACTIVE", 1, [], [])


async def test_the_lifecycle_over_http(http: httpx.AsyncClient) -> None:
    resp = await http.post("/ops/v1/merchants", json=application(licence_no=licence_no().lower()))
    assert resp.status_code == 201, resp.text
    m = resp.json()
    mid = m["id"]
    assert (m["status"], m["reject_reason"]) == ("APPLIED", None)
    assert m["licence_no"] == m["licence_no"].upper()
    r = await http.post(f"/ops/v1/merchants/{mid}/reject", json={"reason": "证照模糊"})
    assert (r.json()["status"], r.json()["reject_reason"]) == ("REJECTED", "证照模糊")
    r = await http.post(f"/ops/v1/merchants/{mid}/resubmit", json={"short_name": "小笼包王"})
    assert (r.json()["status"], r.json()["short_name"], r.json()["reject_reason"]) == (
        "APPLIED", "小笼包王", None)
    assert (await http.post(f"/ops/v1/merchants/{mid}/approve", json={"reason": "ok"})).status_code == 200
    assert (await http.post(f"/ops/v1/merchants/{mid}/activate")).json()["status"] == "ACTIVE"
    r = await http.post(f"/ops/v1/merchants/{mid}/freeze", json={"reason": "可疑交易"})
    assert (r.json()["status"], r.json()["freeze_reason"]) == ("FROZEN", "可疑交易")
    assert (await http.post(f"/ops/v1/merchants/{mid}/unfreeze", json={})).json()["status"] == "ACTIVE"
    assert (await http.post(f"/ops/v1/merchants/{mid}/close")).json()["status"] == "CLOSED"
    assert await events(http, mid) == ["apply", "reject", "resubmit", "approve", "activate",
                                       "freeze", "unfreeze", "close"]
    expect(await http.post(f"/ops/v1/merchants/{mid}/unfreeze"), 409, "ILLEGAL_STATE_TRANSITION")


async def test_apply_refuses_bad_input_and_writes_nothing(http: httpx.AsyncClient) -> None:
    good = application()
    missing = {k: v for k, v in good.items() if k != "legal_person"}
    cases: list[tuple[Any, str]] = [
        (missing, "VALIDATION_ERROR"),
        ({**good, "extra": 1}, "VALIDATION_ERROR"),
        ({**good, "licence_no": "91110000802100433C"}, "VALIDATION_ERROR"),  # check character
        ({**good, "licence_no": "9111000080210043"}, "VALIDATION_ERROR"),
        ({**good, "licence_no": "9111000080210043IB"}, "VALIDATION_ERROR"),
        ({**good, "contact_phone": "12345678901"}, "VALIDATION_ERROR"),
        ({**good, "contact_phone": "1391234567"}, "VALIDATION_ERROR"),
        ({**good, "contact_phone": 13912345678}, "VALIDATION_ERROR"),
        ({**good, "mcc": "581"}, "VALIDATION_ERROR"),
        ({**good, "settlement_account": "6230-9100"}, "VALIDATION_ERROR"),
        ({**good, "name": "   "}, "VALIDATION_ERROR"),
        ({**good, "short_name": "超" * 21}, "VALIDATION_ERROR"),
        ({**good, "name": None}, "VALIDATION_ERROR"),
        ([good], "VALIDATION_ERROR"),
        (b"{\"name\": ", "MALFORMED_JSON"),
    ]
    for body, code in cases:
        if isinstance(body, bytes):
            resp = await http.post("/ops/v1/merchants", content=body,
                                   headers={"Content-Type": "application/json"})
        else:
            resp = await http.post("/ops/v1/merchants", json=body)
        expect(resp, 400, code)
    assert await listed(http) == []
    assert (await http.post("/ops/v1/merchants", json=good)).status_code == 201
    expect(await http.post("/ops/v1/merchants", json={**good, "name": "另一家"}), 409,
           "DUPLICATE_LICENCE")
    assert [m["name"] for m in await listed(http)] == [good["name"]]


async def test_transitions_refuse_bad_input_and_change_nothing(http: httpx.AsyncClient) -> None:
    resp = await http.post("/ops/v1/merchants", json=application())
    mid = resp.json()["id"]
    other = (await http.post("/ops/v1/merchants", json=application())).json()
    cases = [
        ("reject", {}, 400, "VALIDATION_ERROR"),
        ("reject", {"reason": ""}, 400, "VALIDATION_ERROR"),
        ("reject", {"reason": "x" * 257}, 400, "VALIDATION_ERROR"),
        ("reject", {"reason": "x", "note": "y"}, 400, "VALIDATION_ERROR"),
        ("freeze", {"reason": "x"}, 409, "ILLEGAL_STATE_TRANSITION"),
        ("activate", None, 409, "ILLEGAL_STATE_TRANSITION"),
        ("unfreeze", None, 409, "ILLEGAL_STATE_TRANSITION"),
        ("resubmit", {"name": "x"}, 409, "ILLEGAL_STATE_TRANSITION"),
        ("resubmit", {"mcc": "12"}, 400, "VALIDATION_ERROR"),
        ("approve", {"bogus": 1}, 400, "VALIDATION_ERROR"),
    ]
    for action, body, status, code in cases:
        expect(await http.post(f"/ops/v1/merchants/{mid}/{action}", json=body), status, code)
    expect(await http.post("/ops/v1/merchants/mch_nobody/approve"), 404, "MERCHANT_NOT_FOUND")
    expect(await http.get("/ops/v1/merchants/mch_nobody"), 404, "MERCHANT_NOT_FOUND")
    assert (await detail(http, mid))["status"] == "APPLIED"
    assert await events(http, mid) == ["apply"]
    # a resubmission may not take another merchant's licence
    await http.post(f"/ops/v1/merchants/{mid}/reject", json={"reason": "wrong licence"})
    expect(await http.post(f"/ops/v1/merchants/{mid}/resubmit",
                           json={"licence_no": other["licence_no"]}), 409, "DUPLICATE_LICENCE")
    assert (await detail(http, mid))["status"] == "REJECTED"


async def test_list_is_paginated_by_cursor(http: httpx.AsyncClient) -> None:
    ids = [(await http.post("/ops/v1/merchants", json=application())).json()["id"] for _ in range(3)]
    page = (await http.get("/ops/v1/merchants", params={"limit": 2})).json()
    assert ([m["id"] for m in page["data"]], page["has_more"]) == (ids[:2], True)
    page = (await http.get("/ops/v1/merchants",
                           params={"limit": 2, "starting_after": ids[1]})).json()
    assert ([m["id"] for m in page["data"]], page["has_more"]) == (ids[2:], False)
    await http.post(f"/ops/v1/merchants/{ids[0]}/approve")
    page = (await http.get("/ops/v1/merchants", params={"status": "APPROVED"})).json()
    assert [m["id"] for m in page["data"]] == ids[:1]
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"status": "HAPPY"},
                   {"starting_after": "x" * 41}):
        expect(await http.get("/ops/v1/merchants", params=params), 400, "VALIDATION_ERROR")


async def test_stores_terminals_apps_fees_and_plates(http: httpx.AsyncClient,
                                                     settings: Settings) -> None:
    mid, store_id = await active_merchant(http)
    base = f"/ops/v1/merchants/{mid}"
    spk = await http.post(f"{base}/stores/{store_id}/terminals",
                          json={"kind": "SPEAKER", "serial_no": "SPK-01", "speaker_id": "spk_01"})
    assert spk.status_code == 201, spk.text
    assert (spk.json()["kind"], spk.json()["speaker_id"]) == ("SPEAKER", "spk_01")

    key = crypto.generate_rsa_key()
    app = await http.post(f"{base}/apps", json={"name": "till", "notify_url": "https://s.example/n",
                                                "rsa_public_key_pem": crypto.public_key_pem(key)})
    assert app.status_code == 201, app.text
    app_id, secret = app.json()["app_id"], app.json()["secret"]
    rotated = await http.post(f"{base}/apps/{app_id}/rotate")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != secret

    fee = await http.put(f"{base}/fee-rates/alipay", json={"bps": 25})
    assert fee.json() == {"channel": "alipay", "bps": 25, "is_default": False}

    plate = await http.post(f"{base}/plates", json={"store_id": store_id})
    assert plate.status_code == 201, plate.text
    code = plate.json()["code"]
    assert plate.json()["url"] == f"{settings.public_base_url}/pay/q/{code}"
    png = await http.get(f"/ops/v1/plates/{code}.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")

    d = await detail(http, mid)
    listing = (await http.get("/ops/v1/merchants")).text + str(d)
    assert secret not in listing
    assert new_secret not in listing
    assert "secret" not in d["apps"][0]
    assert [r["bps"] for r in d["fee_rates"]] == [38, 25, 38, 38, 0]
    assert [(p["code"], p["status"]) for p in d["plates"]] == [(code, "ACTIVE")]

    off = await http.post(f"/ops/v1/plates/{code}/disable")
    assert off.json()["status"] == "DISABLED"
    expect(await http.get(f"/ops/v1/plates/{code}.png"), 404, "PLATE_NOT_FOUND")
    assert (await http.post(f"{base}/apps/{app_id}/disable")).json()["active"] is False
    expect(await http.post(f"{base}/apps/{app_id}/rotate"), 409, "ILLEGAL_STATE_TRANSITION")
    term = await http.post(f"{base}/stores/{store_id}/terminals/{spk.json()['id']}/disable")
    assert term.json()["active"] is False
    assert (await http.post(f"{base}/stores/{store_id}/disable")).json()["active"] is False


async def test_setup_endpoints_refuse_bad_input_and_write_nothing(http: httpx.AsyncClient) -> None:
    mid, store_id = await active_merchant(http)
    other_mid, other_store = await active_merchant(http)
    base = f"/ops/v1/merchants/{mid}"
    await http.post(f"{base}/stores/{store_id}/terminals", json={"kind": "POS", "serial_no": "P-1"})
    before = await detail(http, mid)
    before_events = await events(http, mid)
    term = f"{base}/stores/{store_id}/terminals"
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", f"{base}/stores", {"name": "", "address": "y"}, 400, "VALIDATION_ERROR"),
        ("POST", f"{base}/stores", {"name": "x"}, 400, "VALIDATION_ERROR"),
        ("POST", "/ops/v1/merchants/mch_nobody/stores", {"name": "x", "address": "y"}, 404,
         "MERCHANT_NOT_FOUND"),
        ("POST", term, {"kind": "TOASTER", "serial_no": "T-1"}, 400, "VALIDATION_ERROR"),
        ("POST", term, {"kind": "SPEAKER", "serial_no": "S-1"}, 400, "VALIDATION_ERROR"),
        ("POST", term, {"kind": "POS", "serial_no": "P-2", "speaker_id": "s"}, 400,
         "VALIDATION_ERROR"),
        ("POST", term, {"kind": "POS", "serial_no": "has space"}, 400, "VALIDATION_ERROR"),
        ("POST", term, {"kind": "POS", "serial_no": "P-1"}, 409, "DUPLICATE_TERMINAL"),
        ("POST", f"{base}/stores/{other_store}/terminals", {"kind": "POS", "serial_no": "P-3"}, 404,
         "STORE_NOT_FOUND"),
        ("POST", f"{base}/stores/{store_id}/terminals/trm_nobody/disable", None, 404,
         "TERMINAL_NOT_FOUND"),
        ("POST", f"{base}/stores/sto_nobody/disable", None, 404, "STORE_NOT_FOUND"),
        ("POST", f"{base}/apps", {"rsa_public_key_pem": "-----BEGIN PUBLIC KEY-----\nxx"}, 400,
         "VALIDATION_ERROR"),
        ("POST", f"{base}/apps", {"notify_url": "javascript:alert(1)"}, 400, "VALIDATION_ERROR"),
        ("POST", f"{base}/apps", {"secret": "mine"}, 400, "VALIDATION_ERROR"),
        ("POST", f"{base}/apps/app_nobody/rotate", None, 404, "NOT_FOUND"),
        ("PUT", f"{base}/fee-rates/wechat", {"bps": 1001}, 400, "VALIDATION_ERROR"),
        ("PUT", f"{base}/fee-rates/wechat", {"bps": -1}, 400, "VALIDATION_ERROR"),
        ("PUT", f"{base}/fee-rates/wechat", {"bps": "38"}, 400, "VALIDATION_ERROR"),
        ("PUT", f"{base}/fee-rates/wechat", {"bps": 38.5}, 400, "VALIDATION_ERROR"),
        ("PUT", f"{base}/fee-rates/wechat", {}, 400, "VALIDATION_ERROR"),
        ("PUT", f"{base}/fee-rates/paypal", {"bps": 38}, 400, "VALIDATION_ERROR"),
        ("POST", f"{base}/plates", {"store_id": other_store}, 404, "STORE_NOT_FOUND"),
        ("POST", f"{base}/plates", {}, 400, "VALIDATION_ERROR"),
        ("POST", "/ops/v1/plates/NOPE000000/disable", None, 404, "PLATE_NOT_FOUND"),
        ("GET", "/ops/v1/plates/NOPE000000.png", None, 404, "PLATE_NOT_FOUND"),
    ]
    for method, path, body, status, code in cases:
        expect(await http.request(method, path, json=body), status, code)
    assert await detail(http, mid) == before
    assert await events(http, mid) == before_events
    assert (await detail(http, other_mid))["terminals"] == []
    # and a closed merchant takes no more set-up
    await http.post(f"{base}/close")
    expect(await http.post(f"{base}/stores", json={"name": "x", "address": "y"}), 403,
           "MERCHANT_CLOSED")
    expect(await http.put(f"{base}/fee-rates/wechat", json={"bps": 1}), 403, "MERCHANT_CLOSED")
    assert len((await detail(http, mid))["stores"]) == 1
