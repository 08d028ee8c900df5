"""The portal's account pages: settlement statements, QR plates (PNG and a printable PDF),
API credentials (rotate: the new secret shown once), the notify_url, speakers and users.

Every read goes through the merchant's own id from the session; a plate, batch or app of
another merchant is answered as not found (404), exactly like one that does not exist.
"""

from __future__ import annotations

import io
from typing import Any

import segno
from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from fulema.core.errors import ErrorCode, FulemaError
from fulema.gateway.protection import shed_when_degraded
from fulema.merchants import plates, users
from fulema.merchants import service as merchants
from fulema.merchants.user_rules import Permission
from fulema.settlement import service as settlement
from fulema.web.portal import auth
from fulema.web.render import render

router = APIRouter(prefix="/portal", include_in_schema=False)


def _actor(ctx: auth.Ctx) -> str:
    return f"portal:{ctx.principal.user.login_name}"


@router.get("/statements")
@auth.page()
async def statements(request: Request) -> Response:
    ctx = auth.ctx_of(request)
    batches = await settlement.list_batches(request.app.state.db, merchant_id=ctx.merchant_id,
                                            limit=60)
    return render(request, "portal/statements.html", batches=batches,
                  can_export=ctx.may(Permission.EXPORT), **ctx.page())


@router.get("/statements/{batch_id}.csv", dependencies=[Depends(shed_when_degraded)])
@auth.page(Permission.EXPORT)
async def statement_csv(request: Request, batch_id: str) -> Response:
    ctx = auth.ctx_of(request)
    text = await settlement.batch_statement(request.app.state.db, batch_id=batch_id,
                                            merchant_id=ctx.merchant_id)
    return Response("\ufeff".encode() + text.encode(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition":
                             f'attachment; filename="statement-{batch_id}.csv"'})


async def _own_plate(request: Request, ctx: auth.Ctx, code: str) -> merchants.PlateView:
    detail = await merchants.get_merchant(request.app.state.db, merchant_id=ctx.merchant_id)
    for plate in detail.plates:
        if plate.code == code and plate.status == "ACTIVE":
            return plate
    raise FulemaError(ErrorCode.PLATE_NOT_FOUND)


@router.get("/plates")
@auth.page()
async def plate_list(request: Request) -> Response:
    ctx = auth.ctx_of(request)
    detail = await merchants.get_merchant(request.app.state.db, merchant_id=ctx.merchant_id)
    names = {s.id: s.name for s in detail.stores}
    settings = request.app.state.settings
    rows = [(p, names.get(p.store_id, p.store_id), plates.plate_url(settings, p.code))
            for p in detail.plates]
    return render(request, "portal/plates.html", rows=rows, **ctx.page())


@router.get("/plates/{code}.png")
@auth.page()
async def plate_png(request: Request, code: str) -> Response:
    plate = await _own_plate(request, auth.ctx_of(request), code)
    url = plates.plate_url(request.app.state.settings, plate.code)
    return Response(plates.plate_png(url), media_type="image/png",
                    headers={"Content-Disposition": f'attachment; filename="plate-{code}.png"'})


@router.get("/plates/{code}.pdf")
@auth.page()
async def plate_pdf(request: Request, code: str) -> Response:
    """A vector PDF for the print shop (segno writes it; scale in points: ~6 cm wide)."""
    plate = await _own_plate(request, auth.ctx_of(request), code)
    url = plates.plate_url(request.app.state.settings, plate.code)
    out = io.BytesIO()
    segno.make_qr(url, error="q", boost_error=True).save(out, kind="pdf", scale=5, border=4)
    return Response(out.getvalue(), media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="plate-{code}.pdf"'})


@router.get("/speakers")
@auth.page()
async def speakers(request: Request) -> Response:
    ctx = auth.ctx_of(request)
    detail = await merchants.get_merchant(request.app.state.db, merchant_id=ctx.merchant_id)
    names = {s.id: s.name for s in detail.stores}
    rows = [(t, names.get(t.store_id, t.store_id)) for t in detail.terminals
            if t.kind == "SPEAKER"]
    return render(request, "portal/speakers.html", rows=rows, **ctx.page())


async def _apps_page(request: Request, *, template: str, status_code: int = 200,
                     **extra: Any) -> Response:
    ctx = auth.ctx_of(request)
    detail = await merchants.get_merchant(request.app.state.db, merchant_id=ctx.merchant_id)
    extra.setdefault("error", "")
    extra.setdefault("secret", None)
    return render(request, template, status_code=status_code, apps=detail.apps, **extra,
                  **ctx.page())


@router.get("/credentials")
@auth.page(Permission.MANAGE)
async def credentials(request: Request) -> Response:
    return await _apps_page(request, template="portal/credentials.html")


@router.post("/credentials/{app_id}/rotate")
@auth.page(Permission.MANAGE)
async def rotate(request: Request, app_id: str) -> Response:
    ctx = auth.ctx_of(request)
    issued = await merchants.rotate_secret(request.app.state.db, merchant_id=ctx.merchant_id,
                                           app_id=app_id, operator=_actor(ctx))
    response = await _apps_page(request, template="portal/credentials.html",
                                secret=issued)
    response.headers["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return response


@router.get("/notify")
@auth.page(Permission.MANAGE)
async def notify(request: Request, saved: str = "") -> Response:
    return await _apps_page(request, template="portal/notify.html",
                            message="已保存 · Saved" if saved else "")


@router.post("/notify/{app_id}")
@auth.page(Permission.MANAGE)
async def set_notify(request: Request, app_id: str,
                     notify_url: str = Form("", max_length=600)) -> Response:
    ctx = auth.ctx_of(request)
    settings = request.app.state.settings
    try:
        await merchants.set_notify_url(request.app.state.db, merchant_id=ctx.merchant_id,
                                       app_id=app_id, notify_url=notify_url,
                                       operator=_actor(ctx), policy=settings.outbound_policy())
    except FulemaError as exc:
        if exc.code is ErrorCode.NOT_FOUND:
            raise
        return await _apps_page(request, template="portal/notify.html", status_code=400,
                                error=exc.message, message="")
    return RedirectResponse("/portal/notify?saved=1", status_code=303)


@router.get("/users")
@auth.page(Permission.MANAGE)
async def user_list(request: Request) -> Response:
    return await _users_page(request)


async def _users_page(request: Request, *, error: str = "", message: str = "",
                      status_code: int = 200) -> Response:
    ctx = auth.ctx_of(request)
    rows = await users.list_users(request.app.state.db, merchant_id=ctx.merchant_id)
    return render(request, "portal/users.html", status_code=status_code, rows=rows, error=error,
                  message=message, roles=users.OWNER_CREATABLE, role_labels=auth.ROLE_LABELS,
                  **ctx.page())


@router.post("/users")
@auth.page(Permission.MANAGE)
async def create_user(request: Request, login_name: str = Form("", max_length=64),
                      display_name: str = Form("", max_length=64),
                      role: str = Form("", max_length=16),
                      password: str = Form("", max_length=128)) -> Response:
    ctx = auth.ctx_of(request)
    try:
        if role not in users.OWNER_CREATABLE:
            raise FulemaError(ErrorCode.VALIDATION_ERROR,
                              "role: 收银员或财务 · cashier or accountant")
        await users.create_user(request.app.state.db, merchant_id=ctx.merchant_id,
                                login_name=login_name.strip(), display_name=display_name,
                                role=role, password=password, actor=_actor(ctx))
    except FulemaError as exc:
        return await _users_page(request, error=exc.message,
                                 status_code=exc.http_status if exc.http_status < 500 else 400)
    return await _users_page(request, message=f"已添加 {login_name.strip()} · Added")
