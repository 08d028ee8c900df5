"""The page at `/`: a person who opens the server's address learns what it is and where to go.

Server-rendered with the cashier's own layout (`web/pages.py`): no script, no font or style from
another host, so it reads the same inside a closed network.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from fulema.web import pages

_FAVICON = Path(__file__).parent / "static" / "favicon.ico"


def home_router(*, demo_plate: str | None) -> APIRouter:
    """`demo_plate` is the seeded demo merchant's plate code, or None when no demo is seeded."""
    router = APIRouter(include_in_schema=False)
    body = _body(demo_plate)

    @router.get("/", response_class=HTMLResponse)
    async def home() -> HTMLResponse:
        return HTMLResponse(pages.page("付了码 Fulema", body))

    @router.get("/favicon.ico")
    async def favicon() -> FileResponse:
        """Browsers ask for it on every first visit; a 404 there is a console error."""
        return FileResponse(_FAVICON, media_type="image/x-icon",
                            headers={"Cache-Control": "public, max-age=86400"})

    return router


def _body(demo_plate: str | None) -> str:
    links = [
        ("/portal/", "商户门户 · Merchant portal",
         "takings, orders, refunds, reports, statements, plates, API keys"),
        ("/console/", "运营控制台 · Operations console",
         "merchant review, freeze, channels, risk cases, reconciliation, settlement, audit"),
        ("/docs", "API 文档 · API documentation", "merchant and operator APIs (Swagger UI)"),
        ("/redoc", "API 参考 · API reference", "the same document, for reading (ReDoc)"),
        ("/healthz", "健康检查 · Health", "is the server up and its database reachable"),
    ]
    if demo_plate is not None:
        links.append((f"/pay/q/{demo_plate}", "演示收款码 · Demo cashier",
                      "the demo merchant's QR plate, as a payer's app opens it"))
    items = "".join(f'<li><a href="{escape(href)}">{escape(name)}</a>'
                    f'<br><span class="muted">{escape(what)}</span></li>' for href, name, what in links)
    return (
        '<div class="card"><h1>付了码 Fulema</h1>'
        '<p class="muted">聚合支付平台 · An aggregated payment platform for banks and acquirers: '
        "one merchant QR code for WeChat Pay, Alipay, UnionPay, e-CNY and the bank's own app.</p>"
        f"<ul>{items}</ul>"
        "</div>")
