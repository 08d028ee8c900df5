"""`/openapi.json` is what an integrator generates a client from: every operation names its
request body, its answer and the errors it really sends ({code, message, request_id}, never
FastAPI's 422), and what the API answers agrees with what the document says."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fulema.app import create_app
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode
from fulema.payments.schemas import OrderOut
from tests.payments.conftest import Platform

ERROR_OUT = "#/components/schemas/ErrorOut"
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
async def doc(settings: Settings) -> dict[str, Any]:
    """The document as a client fetches it (no database needed: it is built from the routes)."""
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        resp = await http.get("/openapi.json")
    assert resp.status_code == 200
    document: dict[str, Any] = resp.json()
    return document


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in doc["paths"].items()
            for method, op in item.items() if method in METHODS]


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def walk(node: Any) -> list[Any]:
    """Every key and value in the document, however deep."""
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in (k, *walk(v))]
    if isinstance(node, list):
        return [x for v in node for x in walk(v)]
    return [node]


def documented(doc: dict[str, Any], method: str, path: str) -> set[tuple[int, str]]:
    responses = doc["paths"][path][method.lower()]["responses"]
    return {(int(status), code) for status, r in responses.items()
            for code in r.get("x-error-codes", ())}


async def test_no_operation_documents_a_422_that_never_comes(doc: dict[str, Any]) -> None:
    everything = walk(doc)
    assert "422" not in everything
    assert not [x for x in everything if isinstance(x, str) and "ValidationError" in x]


async def test_every_error_answer_is_error_out_with_codes_of_its_status(
        doc: dict[str, Any]) -> None:
    error_out = resolve(doc, {"$ref": ERROR_OUT})
    assert {"code", "message", "request_id"} <= set(error_out["required"])
    for method, path, op in operations(doc):
        errors = {s: r for s, r in op["responses"].items() if int(s) >= 400}
        assert errors, f"{method} {path} documents no error"
        assert "500" in errors, f"{method} {path}: INTERNAL_ERROR is possible everywhere"
        for status, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_OUT}, (method, path, status)
            codes = [ErrorCode(c) for c in response["x-error-codes"]]
            assert codes, (method, path, status)
            assert {c.http_status for c in codes} == {int(status)}, (method, path, status)
            for code in codes:
                assert code.value in response["description"]


async def test_every_merchant_operation_has_its_body_answer_and_signature_errors(
        doc: dict[str, Any]) -> None:
    merchant_api = [(m, p, op) for m, p, op in operations(doc) if p.startswith("/api/v1/")]
    assert len(merchant_api) == 18  # 9 for orders and refunds, bills, 3 for marketing, onboarding,
    # 2 for message subscriptions, 2 for the merchant's notices
    for method, path, op in merchant_api:
        ok = [s for s in op["responses"] if s in {"200", "201"}]
        assert len(ok) == 1, (method, path)
        if "text/csv" in op["responses"][ok[0]]["content"]:  # the bill download
            assert (401, "SIGNATURE_INVALID") in documented(doc, method, path), (method, path)
            continue
        answer = resolve(doc, op["responses"][ok[0]]["content"]["application/json"]["schema"])
        assert answer.get("properties"), (method, path)
        assert (401, "SIGNATURE_INVALID") in documented(doc, method, path), (method, path)
        if "requestBody" in op:
            body = resolve(doc, op["requestBody"]["content"]["application/json"]["schema"])
            assert body.get("properties"), (method, path)
            assert (400, "MALFORMED_JSON") in documented(doc, method, path), (method, path)
    with_body = {(m, p) for m, p, op in merchant_api if "requestBody" in op}
    assert with_body == {("POST", "/api/v1/orders"), ("POST", "/api/v1/orders/{order_id}/refunds"),
                         ("POST", "/api/v1/marketing/quote"),
                         ("POST", "/api/v1/marketing/coupons/claim"),
                         ("PUT", "/api/v1/message-subscriptions")}
    create = doc["paths"]["/api/v1/orders"]["post"]
    body = resolve(doc, create["requestBody"]["content"]["application/json"]["schema"])
    assert {"out_trade_no", "amount", "subject", "way_code"} <= set(body["required"])
    assert resolve(doc, create["responses"]["200"]["content"]["application/json"]["schema"])[
        "properties"].keys() == OrderOut.model_fields.keys()


async def test_operator_operations_document_the_token_and_their_own_refusals(
        doc: dict[str, Any]) -> None:
    for method, path, _ in operations(doc):
        if path.startswith("/ops/v1/"):
            assert (401, "UNAUTHORIZED") in documented(doc, method, path), (method, path)
    assert (409, "ILLEGAL_STATE_TRANSITION") in documented(
        doc, "POST", "/ops/v1/merchants/{merchant_id}/freeze")
    assert (404, "MERCHANT_NOT_FOUND") in documented(doc, "GET", "/ops/v1/merchants/{merchant_id}")
    assert (409, "DUPLICATE_LICENCE") in documented(doc, "POST", "/ops/v1/merchants")


async def test_what_the_api_answers_is_what_the_document_says(platform: Platform,
                                                              doc: dict[str, Any]) -> None:
    """Real refusals of each kind: each status and code is among its operation's documented
    ones, and the body has exactly ErrorOut's fields; a real order answer has OrderOut's."""
    order = await platform.order(amount=1250)
    assert order.status_code == 200
    assert set(order.json()) == set(OrderOut.model_fields)
    OrderOut.model_validate(order.json())
    order_id = order.json()["order_id"]

    refusals = [
        ("POST", "/api/v1/orders", await platform.http.post("/api/v1/orders", json={})),
        ("POST", "/api/v1/orders", await platform.call("POST", "/api/v1/orders", b"{not json")),
        ("POST", "/api/v1/orders", await platform.order(amount=0)),
        ("POST", "/api/v1/orders", await platform.order(out_trade_no=order.json()["out_trade_no"],
                                                        amount=99)),
        ("GET", "/api/v1/orders/{order_id}", await platform.call("GET", "/api/v1/orders/ord_x")),
        ("POST", "/api/v1/orders/{order_id}/refunds", await platform.call(
            "POST", f"/api/v1/orders/{order_id}/refunds", {"out_refund_no": "R0000001",
                                                           "amount": 100})),
        ("GET", "/ops/v1/merchants", await platform.http.get("/ops/v1/merchants")),
    ]
    seen = set()
    for method, path, resp in refusals:
        body = resp.json()
        assert set(body) == {"code", "message", "request_id"}, body
        assert (resp.status_code, body["code"]) in documented(doc, method, path), (path, body)
        seen.add(body["code"])
    assert seen == {"SIGNATURE_MISSING", "MALFORMED_JSON", "INVALID_AMOUNT",
                    "DUPLICATE_OUT_TRADE_NO", "ORDER_NOT_FOUND", "ORDER_NOT_PAID", "UNAUTHORIZED"}
