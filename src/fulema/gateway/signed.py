"""The one door of the merchant API: every signed route (payments, marketing, bills, ...) comes
through `signed_request` and `parse_body`, so none can forget a check.

In order, cheapest refusal first: headers present, timestamp (ASCII digits) inside the window,
signature over the raw request line and body, nonce not seen before (or deferred to the
caller's transaction), then the app's own rate limits and concurrency share (`admit_app`),
which only a proven app may spend. The body is validated after all that, so an unsigned
caller learns nothing about our validation rules.

Routes take it as a FastAPI dependency (`Signed` or `SignedDeferredNonce`); the dependency
adds nothing to the OpenAPI document, where each route lists `SIGNED` with its own codes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, TypeVar

import orjson
from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from fulema.core import logctx
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.gateway.protection import admit_app
from fulema.gateway.service import authenticate
from fulema.merchants.service import AppCredential

E = ErrorCode
# What the signed door can refuse, on every merchant route (documented on each one).
SIGNED = (E.SIGNATURE_MISSING, E.SIGNATURE_INVALID, E.TIMESTAMP_EXPIRED, E.NONCE_REPLAYED,
          E.APP_NOT_FOUND, E.RATE_LIMITED, E.OVERLOADED)
M = TypeVar("M", bound=BaseModel)

# A field whose validation failure has its own documented code (the rest: VALIDATION_ERROR).
FIELD_CODES: Mapping[str, tuple[ErrorCode, str]] = {
    "amount": (E.INVALID_AMOUNT, "amount must be an integer number of fen"),
    "points": (E.INVALID_POINTS, "points must be a whole number"),
}


@dataclass(frozen=True)
class SignedRequest:
    """A merchant request whose signature, timestamp and nonce are good and whose app was
    admitted by its rate limits; `body` is the raw bytes that were signed."""

    cred: AppCredential
    body: bytes
    nonce: str


def signed_path(request: Request) -> str:
    """The path as it was sent (percent-encoded), not as the server decoded it: a client signs
    the request line it sends, and `A%7CB` and `A|B` must not be one path to the signature."""
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    return raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


async def verify(request: Request, *, defer_nonce: bool = False) -> SignedRequest:
    """Authenticate, then admit the app; raises the documented error of the first failure.

    With `defer_nonce` the route records the nonce in the transaction that does the work
    (order creation), so a replay is refused by the same commit that would have acted on it."""
    body = await request.body()
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    headers = {k.lower(): v for k, v in request.headers.items()}
    cred = await authenticate(db, settings, method=request.method, path=signed_path(request),
                              headers=headers, body=body, defer_nonce=defer_nonce)
    logctx.bind(app_id=cred.app_id, merchant_id=cred.merchant_id)  # proven: on every log line
    await admit_app(request, cred.app_id)  # the app's own limits, now that it is proven
    return SignedRequest(cred=cred, body=body, nonce=headers.get("x-fulema-nonce", ""))


async def signed_request(request: Request) -> SignedRequest:
    return await verify(request)


async def signed_request_deferred_nonce(request: Request) -> SignedRequest:
    return await verify(request, defer_nonce=True)


Signed = Annotated[SignedRequest, Depends(signed_request)]
SignedDeferredNonce = Annotated[SignedRequest, Depends(signed_request_deferred_nonce)]


def parse_body(model: type[M], raw: bytes) -> M:
    """The signed body as `model`: MALFORMED_JSON, a field's own code, or VALIDATION_ERROR
    naming the first bad field."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FulemaError(E.MALFORMED_JSON, "body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise FulemaError(E.MALFORMED_JSON, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if field in FIELD_CODES:
            code, message = FIELD_CODES[field]
            raise FulemaError(code, message) from exc
        raise FulemaError(E.VALIDATION_ERROR, f"{field}: {first['msg']}") from exc
