"""HTTP plumbing shared by every router: the error shape, request ids, body limits, the
dependencies that hand a request its database and settings, and the OpenAPI document of the
errors (so the document and the handlers that answer them cannot disagree)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fulema.core import logctx
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id

log = structlog.get_logger(__name__)
_PLAIN_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,64}")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def bearer_matches(request: Request, expected: str) -> bool:
    """Whether the request carries `Authorization: Bearer <expected>`, compared in constant
    time over bytes: a header is any bytes (latin-1 as the server decoded them), and
    `hmac.compare_digest` on two `str` raises TypeError on anything not ASCII, a 500 whose
    traceback held the expected token."""
    auth = request.headers.get("authorization", "")
    token = auth[7:] if auth[:7].lower() == "bearer " else ""
    if not token or not expected:
        return False
    return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), expected.encode())



ROLES = ("reviewer", "risk", "finance", "admin")


@dataclass(frozen=True)
class OperatorIdentity:
    """Who is calling an operator endpoint: a name for the audit trail and the roles it holds.
    `break_glass` marks the shared bootstrap token (FULEMA_OPERATOR_TOKEN): it holds every
    role, and its dangerous actions run without a second operator (see docs/security.md)."""

    name: str
    roles: frozenset[str]
    break_glass: bool = False

    def holds(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


class OperatorDirectory(Protocol):
    """Looks an operator's own API token up (the operators context provides it; the
    composition root puts it on `app.state.operator_directory`), so `core` imports no context."""

    async def authenticate(self, token: str) -> OperatorIdentity | None: ...


def _bearer(request: Request) -> bytes:
    """The bearer token as bytes: header values are latin-1, so encoding never fails and a
    non-ASCII byte compares as unequal instead of raising inside `compare_digest`."""
    auth = request.headers.get("authorization", "")
    return auth[7:].strip().encode("latin-1") if auth.lower().startswith("bearer ") else b""


async def authenticate_operator(request: Request) -> OperatorIdentity:
    """The calling operator, or UNAUTHORIZED. The shared FULEMA_OPERATOR_TOKEN is the bootstrap
    identity (a named admin with every role) unless FULEMA_OPERATOR_BOOTSTRAP_ENABLED is false;
    any other token is looked up in the operator directory. Answered once per request."""
    known: OperatorIdentity | None = getattr(request.state, "operator", None)
    if known is not None:
        return known
    settings = get_settings(request)
    token = _bearer(request)
    identity: OperatorIdentity | None = None
    if token and settings.operator_bootstrap_enabled and hmac.compare_digest(
            token, settings.operator_token.encode()):
        identity = OperatorIdentity(name=settings.operator_bootstrap_name,
                                    roles=frozenset(ROLES), break_glass=True)
    elif token and token.isascii():
        directory: OperatorDirectory | None = getattr(request.app.state, "operator_directory",
                                                      None)
        if directory is not None:
            identity = await directory.authenticate(token.decode("ascii"))
    if identity is None:
        raise FulemaError(ErrorCode.UNAUTHORIZED)
    request.state.operator = identity
    return identity


async def require_operator(request: Request) -> str:
    """Any authenticated operator, whatever its roles; answers its name."""
    return (await authenticate_operator(request)).name


def operator_identity(request: Request) -> OperatorIdentity:
    """The identity `require_role` / `OperatorRoute` established for this request."""
    identity: OperatorIdentity | None = getattr(request.state, "operator", None)
    if identity is None:
        raise FulemaError(ErrorCode.UNAUTHORIZED)
    return identity


def require_role(*roles: str) -> Callable[[Request], Coroutine[Any, Any, str]]:
    """A dependency for an operator endpoint that only the named roles may call; answers the
    operator's name for the audit trail (`core.audit.record(actor=...)`). A valid token without
    one of the roles gets OPERATOR_FORBIDDEN."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles: {sorted(unknown)}" if unknown else "no role named")

    async def dependency(request: Request) -> str:
        identity = await authenticate_operator(request)
        if not identity.holds(*roles):
            raise FulemaError(ErrorCode.OPERATOR_FORBIDDEN,
                              f"this needs the role {' or '.join(roles)}")
        return identity.name

    return dependency


class OperatorRoute(APIRoute):
    """Checks the operator's token before FastAPI reads the body, so a caller without it gets
    UNAUTHORIZED and never learns how we validate bodies (FastAPI would otherwise answer
    malformed JSON before running any dependency)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            await authenticate_operator(request)
            return await handler(request)

        return checked


def request_id(request: Request) -> str:
    rid: str = getattr(request.state, "request_id", "") or "-"
    return rid


def error_response(request: Request, code: ErrorCode, message: str,
                   details: dict[str, Any] | None = None, *,
                   status_code: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code.value, "message": message,
                            "request_id": request_id(request)}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status_code or code.http_status)


# SQLSTATEs of a database that cannot take this transaction now: read-only (a fenced primary),
# administrator or crash shutdown, not accepting connections yet (a promotion under way).
_UNAVAILABLE_SQLSTATES = {"25006", "57P01", "57P02", "57P03", "08000", "08003", "08006"}


def database_unavailable(exc: DBAPIError) -> bool:
    """Whether the failure is the database being away or read-only, not our bug: the merchant
    may retry the same request (every create and refund is idempotent)."""
    if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
        return True
    # asyncpg's multi-host connect finds no host taking writes (between fence and promotion).
    if type(exc.orig).__name__ == "InternalClientError" and "target attribute" in str(exc.orig):
        return True
    return getattr(exc.orig, "sqlstate", None) in _UNAVAILABLE_SQLSTATES


def install_error_handlers(app: FastAPI) -> None:
    """The handlers that turn every failure into `ErrorOut`, and the OpenAPI document of it."""
    document_errors(app)

    @app.exception_handler(FulemaError)
    async def _fulema(request: Request, exc: FulemaError) -> JSONResponse:
        response = error_response(request, exc.code, exc.message, exc.details or None)
        if "retry_after" in exc.details:
            response.headers["Retry-After"] = str(exc.details["retry_after"])
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(request, ErrorCode.MALFORMED_JSON, "body is not valid JSON")
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
        return error_response(request, ErrorCode.VALIDATION_ERROR, msg)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(request, ErrorCode.NOT_FOUND, "no such endpoint")
        if exc.status_code == 405:
            # RFC 9110: a 405 names the methods the resource takes (the router put them in)
            answer = error_response(request, ErrorCode.METHOD_NOT_ALLOWED, str(exc.detail))
            allow = (exc.headers or {}).get("Allow")
            if allow:
                answer.headers["Allow"] = allow
            return answer
        return error_response(request, ErrorCode.HTTP_ERROR, str(exc.detail),
                              status_code=exc.status_code)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if not database_unavailable(exc):
            return await _unexpected(request, exc)
        log.warning("database.unavailable", request_id=request_id(request),
                    error=type(exc.orig).__name__)
        response = error_response(request, ErrorCode.DATABASE_UNAVAILABLE,
                                  ErrorCode.DATABASE_UNAVAILABLE.description)
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled", request_id=request_id(request), error=repr(exc))
        return error_response(request, ErrorCode.INTERNAL_ERROR, ErrorCode.INTERNAL_ERROR.description)


class RequestContextMiddleware:
    """Gives every request an id (echoed as X-Request-Id) and refuses oversized bodies before
    any handler reads them. Pure ASGI so it does not buffer or wrap streaming responses."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        # a caller's id is echoed (header, body, log) only if it is plain: no bytes of theirs
        # reach a response header or a log line unchecked
        given = headers.get(b"x-request-id", b"")
        rid = given.decode("ascii") if _PLAIN_ID.fullmatch(given) else new_id("req")
        scope.setdefault("state", {})["request_id"] = rid
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _too_large(rid, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise FulemaError(ErrorCode.BODY_TOO_LARGE)
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        with logctx.scope(request_id=rid):  # every log line of this request names it
            await self.app(scope, limited_receive, send_with_id)


async def _too_large(rid: str, send: Send) -> None:
    body = orjson.dumps({"code": ErrorCode.BODY_TOO_LARGE.value,
                         "message": ErrorCode.BODY_TOO_LARGE.description, "request_id": rid})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"x-request-id", rid.encode())]})
    await send({"type": "http.response.body", "body": body})


def json_response(data: Any, status_code: int = 200) -> Response:
    """JSON by orjson: the wire format of every answer (a view is dumped field by field, so
    datetimes keep orjson's `+00:00` form rather than pydantic's `Z`)."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


# ---------------------------------------------------------------------------- OpenAPI

REF = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": REF.format(model="ErrorOut")}
# Bodies that routes read themselves (the merchant API checks the signature over the raw
# bytes before it parses them), registered by `json_body` so the document can describe them.
_BODY_MODELS: dict[str, type[BaseModel]] = {}


class ErrorOut(BaseModel):
    """Every error answer, whatever the route: branch on `code`, show `message`, quote
    `request_id` to the bank's support."""

    code: ErrorCode = Field(description="Stable code from the error table (docs/errors.md)")
    message: str = Field(description="What went wrong, for a person")
    request_id: str = Field(description="Also in the X-Request-Id header")
    details: dict[str, Any] | None = Field(default=None, description="Present on some codes")


def error_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: one `ErrorOut` answer per HTTP status, listing the codes the
    route can answer with (`x-error-codes`). Codes every route shares (signature, operator
    token, body shape, internal error) are added by `document_errors`; list the rest here."""
    return {status: {"model": ErrorOut, "description": _describe(group),
                     "x-error-codes": [c.value for c in group]}
            for status, group in _by_status(codes).items()}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads and checks its JSON body itself: documents the
    request body as `model` (FastAPI cannot see a body the route parses by hand)."""
    _BODY_MODELS[model.__name__] = model
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}}


def document_errors(app: FastAPI) -> None:
    """Make `/openapi.json` tell the truth about errors, in one place for every router.

    FastAPI documents a 422 `HTTPValidationError` that this API never sends (the handlers
    above answer 400 `ErrorOut`). Each operation instead lists the codes its route declared
    (`error_responses`) plus those that follow from its shape: a JSON body can be malformed,
    invalid or too large; a parameter that can fail validation gives VALIDATION_ERROR;
    `/ops/v1` needs the operator token; anything can fail with INTERNAL_ERROR."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 openapi_version=app.openapi_version,
                                 description=app.description, routes=app.routes)
            _rewrite_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _rewrite_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    models: list[type[BaseModel]] = [ErrorOut, *_BODY_MODELS.values()]
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    for name, definition in defs.get("$defs", {}).items():
        components.setdefault(name, definition)
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            codes = [ErrorCode(c) for r in responses.values() for c in r.get("x-error-codes", ())]
            codes += _implied_codes(path, operation)
            for key in [k for k, r in responses.items() if "x-error-codes" in r]:
                del responses[key]
            for status, group in _by_status(codes).items():
                responses[str(status)] = {
                    "description": _describe(group), "x-error-codes": [c.value for c in group],
                    "content": {"application/json": {"schema": dict(_ERROR_REF)}}}
            operation["responses"] = dict(sorted(responses.items()))


def _implied_codes(path: str, operation: dict[str, Any]) -> list[ErrorCode]:
    codes = [ErrorCode.INTERNAL_ERROR]
    if path.startswith("/ops/v1/"):
        codes += [ErrorCode.UNAUTHORIZED, ErrorCode.OPERATOR_FORBIDDEN]
    if "requestBody" in operation:
        codes += [ErrorCode.MALFORMED_JSON, ErrorCode.VALIDATION_ERROR, ErrorCode.BODY_TOO_LARGE]
    if any(_can_fail(p) for p in operation.get("parameters", ())):
        codes.append(ErrorCode.VALIDATION_ERROR)
    return codes


def _can_fail(parameter: dict[str, Any]) -> bool:
    """Whether FastAPI can refuse this parameter: a path segment that is any string cannot."""
    plain = parameter.get("schema", {}).keys() <= {"type", "title"}
    is_str = parameter.get("schema", {}).get("type") == "string"
    return not (parameter.get("in") == "path" and is_str and plain)


def _by_status(codes: Iterable[ErrorCode]) -> dict[int, list[ErrorCode]]:
    wanted = set(codes)
    groups: dict[int, list[ErrorCode]] = {}
    for code in ErrorCode:  # the table's order, so the document reads like docs/errors.md
        if code in wanted:
            groups.setdefault(code.http_status, []).append(code)
    return dict(sorted(groups.items()))


def _describe(codes: list[ErrorCode]) -> str:
    return "\n".join(f"- `{c.value}`: {c.description}" for c in codes)
