"""Pieces the JSON sandboxes (bankpay, e-CNY, WeChat Pay v3) share.

The channel API side: reading a request body and the order fields every create call checks,
answering with the {code, message} refusal shape. The payer side (`/wallet/...`, plain JSON,
unsigned): body parsing, answers, creating a payer, issuing a payer code, the fault switch.
Each sandbox keeps its own codes where they differ (PARAM_INVALID or PARAM_ERROR) and its own
time format.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response

Result = tuple[int, dict[str, Any]]
P = TypeVar("P")


@dataclass
class Faults:
    mode: str = "none"
    delay_ms: int = 0
    statement_diff: dict[str, Any] = field(default_factory=dict)


def _refusal(status: int, code: str, message: str) -> Result:
    return status, {"code": code, "message": message}


# ------------------------------------------------------------------ channel API side

def positive_int(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def order_fields(body: dict[str, Any]) -> Result | None:
    """The refusal for a bad out_trade_no, amount_fen or currency; None when they are fine."""
    no = body.get("out_trade_no")
    if not isinstance(no, str) or not 6 <= len(no) <= 64:
        return _refusal(400, "PARAM_INVALID", "out_trade_no must be 6-64 characters")
    if positive_int(body, "amount_fen") is None:
        return _refusal(400, "PARAM_INVALID", "amount_fen must be a positive integer")
    if body.get("currency", "CNY") != "CNY":
        return _refusal(400, "PARAM_INVALID", "currency must be CNY")
    return None


def json_object(raw: bytes) -> dict[str, Any] | None:
    """A request body as a JSON object ({} when empty); None when it is anything else."""
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def with_body(raw: bytes, merchant_key: str, merchant: str,
              handler: Callable[[dict[str, Any]], Result]) -> Result:
    """The handler's answer to a body that is a JSON object (or empty) and names this merchant
    under `merchant_key` (or no merchant); the refusal otherwise."""
    body = json_object(raw)
    if body is None:
        return _refusal(400, "PARAM_INVALID", "body must be a JSON object")
    if body.get(merchant_key, merchant) != merchant:
        return _refusal(403, "MERCHANT_INVALID", f"{merchant_key} does not match")
    return handler(body)


# ------------------------------------------------------------------ wallet side

async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object; {} for an empty, malformed or non-object body."""
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        body = None
    return body if isinstance(body, dict) else {}


def answer(data: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def refuse(status: int, code: str, message: str) -> Response:
    return answer({"code": code, "message": message}, status)


def new_payer(body: dict[str, Any], taken: Container[str], make_id: Callable[[], str], *,
              param_code: str = "PARAM_INVALID",
              check: Callable[[], Response | None] | None = None) -> tuple[str, int] | Response:
    """(payer_id, balance_fen) for POST /wallet/payers, or the refusal: a taken payer_id, then
    `check` (the sandbox's own fields), then a balance that is not a non-negative integer."""
    pid = body.get("payer_id") or make_id()
    if not isinstance(pid, str) or pid in taken:
        return refuse(409, "PAYER_EXISTS", "payer_id is taken")
    refused = check() if check is not None else None
    if refused is not None:
        return refused
    balance = body.get("balance_fen", 0)
    if not isinstance(balance, int) or isinstance(balance, bool) or balance < 0:
        return refuse(400, param_code, "balance_fen is a non-negative integer")
    return pid, balance


def payer_code(pid: str, payer: P | None, issue: Callable[[P], tuple[str, datetime | None]],
               stamp: Callable[[datetime], str]) -> Response:
    """POST /wallet/payers/{pid}/code: a fresh payer code, or 404 PAYER_NOT_FOUND."""
    if payer is None:
        return refuse(404, "PAYER_NOT_FOUND", pid)
    auth_code, expires = issue(payer)
    return answer({"auth_code": auth_code, "payer_id": pid,
                   "expires_at": stamp(expires) if expires is not None else None})


def set_faults(faults: Faults, body: dict[str, Any], param_code: str) -> Response:
    """POST /wallet/faults: {mode: none|5xx|slow|garbled, delay_ms, statement_diff}."""
    mode = body.get("mode", faults.mode)
    if mode not in ("none", "5xx", "slow", "garbled"):
        return refuse(400, param_code, "mode is none, 5xx, slow or garbled")
    faults.mode = mode
    faults.delay_ms = int(body.get("delay_ms", faults.delay_ms))
    if isinstance(body.get("statement_diff"), dict):
        faults.statement_diff = body["statement_diff"]
    return answer({"mode": faults.mode, "delay_ms": faults.delay_ms,
                   "statement_diff": faults.statement_diff})
