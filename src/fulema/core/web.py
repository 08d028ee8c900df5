"""HTTP plumbing shared by every router: the error shape, request ids, body limits and the
dependencies that hand a request its database and settings."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id

log = structlog.get_logger(__name__)


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require_operator(request: Request) -> str:
    """Bank operators' endpoints (/ops/v1) take `Authorization: Bearer <FULEMA_OPERATOR_TOKEN>`."""
    settings = get_settings(request)
    auth = request.headers.get("authorization", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else ""
    if not token or not hmac.compare_digest(token, settings.operator_token):
        raise FulemaError(ErrorCode.UNAUTHORIZED)
    return "operator"


class OperatorRoute(APIRoute):
    """Checks the operator's token before FastAPI reads the body, so a caller without it gets
    UNAUTHORIZED and never learns how we validate bodies (FastAPI would otherwise answer
    malformed JSON before running any dependency)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            require_operator(request)
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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FulemaError)
    async def _fulema(request: Request, exc: FulemaError) -> JSONResponse:
        return error_response(request, exc.code, exc.message, exc.details or None)

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
            return error_response(request, ErrorCode.METHOD_NOT_ALLOWED, str(exc.detail))
        return error_response(request, ErrorCode.HTTP_ERROR, str(exc.detail),
                              status_code=exc.status_code)

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
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or new_id("req")
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

        await self.app(scope, limited_receive, send_with_id)


async def _too_large(rid: str, send: Send) -> None:
    body = orjson.dumps({"code": ErrorCode.BODY_TOO_LARGE.value,
                         "message": ErrorCode.BODY_TOO_LARGE.description, "request_id": rid})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"x-request-id", rid.encode())]})
    await send({"type": "http.response.body", "body": body})


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")
