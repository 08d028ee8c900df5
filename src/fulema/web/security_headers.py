"""Browser-facing protection headers on every answer, and a Content-Security-Policy on pages.

Every answer: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (no page of ours may
be framed: a framed cashier is a click-jacked payment), `Referrer-Policy: no-referrer` (the
cashier's and result pages' URLs carry plate codes and order ids).

HTML answers also get a Content-Security-Policy: scripts only from this host or inline with
this answer's nonce (`script_nonce(request)`: the cashier's amount pad and the Swagger UI
starter carry it), no plugins, no framing, forms post only here. Styles may be inline
(the pages' own `<style>`, and ReDoc and Swagger UI set styles from script); images from here
or `data:` (Swagger UI's icons). Nothing names another host, as the pages load nothing from one.

The channel sandboxes (development only, mounted under /sandbox) stand in for other parties'
pages and keep their own markup: they get the plain headers but no policy.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNPOLICED_PREFIXES = ("/sandbox/",)
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer")]


def content_security_policy(nonce: str) -> str:
    return ("default-src 'self'; "
            f"script-src 'self' 'nonce-{nonce}'; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; "
            "font-src 'self'; "
            "connect-src 'self'; "
            "worker-src 'self' blob:; "
            "object-src 'none'; "
            "base-uri 'none'; "
            "form-action 'self'; "
            "frame-ancestors 'none'")


def script_nonce(request: Request) -> str:
    """The nonce this answer's policy allows inline scripts with (empty outside the middleware,
    where no policy is sent either)."""
    nonce: str = getattr(request.state, "csp_nonce", "")
    return nonce


class SecurityHeadersMiddleware:
    """Pure ASGI, so it neither buffers nor wraps streaming answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(18)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        policed = not str(scope.get("path", "")).startswith(UNPOLICED_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _ALWAYS if k not in present]
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if policed and content_type.startswith(b"text/html"):
                    headers.append((b"content-security-policy",
                                    content_security_policy(nonce).encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
