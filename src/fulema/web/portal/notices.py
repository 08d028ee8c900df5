"""The portal's notices page: the logged-in merchant's in-portal notices (settlement payouts,
risk alerts naming it), newest first, twenty a page by cursor, all or only the unread, each
unread one with its "mark read" button. The navigation shows the unread count on every page
(auth.Ctx). Every read and write is scoped to the session's merchant (messaging.notices):
another merchant's notice id in the URL is "not found", and nothing changes."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from fulema.messaging import notices as service
from fulema.web.portal import auth
from fulema.web.render import render

router = APIRouter(prefix="/portal", include_in_schema=False)
PAGE_SIZE = 20


def _list_href(unread: bool, after: str | None = None) -> str:
    q = {**({"unread": "1"} if unread else {}), **({"after": after} if after else {})}
    return "/portal/notices" + (f"?{urlencode(q)}" if q else "")


@router.get("/notices")
@auth.page()
async def notices_page(request: Request, unread: str = "", after: str = "") -> Response:
    ctx = auth.ctx_of(request)
    if unread not in ("", "0", "1"):
        return render(request, "portal/notices.html", status_code=400,
                      error="unread: 应为 1 或 0 · must be 1 or 0", items=[], unread_only=False,
                      first_href="", next_href="", **ctx.page())
    only = unread == "1"
    cursor = after[:40] or None
    items, more = await service.list_notices_of(request.app.state.db, merchant_id=ctx.merchant_id,
                                                unread_only=only, limit=PAGE_SIZE,
                                                starting_after=cursor)
    return render(request, "portal/notices.html", error="", items=items, unread_only=only,
                  first_href=_list_href(only) if cursor else "",
                  next_href=_list_href(only, items[-1].id) if more and items else "",
                  **ctx.page())


@router.post("/notices/{notice_id}/read")
@auth.page()
async def read_notice(request: Request, notice_id: str,
                      unread: str = Form("", max_length=1)) -> Response:
    """Mark read, then back to the list the button was on (a second submit changes nothing)."""
    ctx = auth.ctx_of(request)
    await service.mark_read_of(request.app.state.db, merchant_id=ctx.merchant_id,
                               notice_id=notice_id[:40], reader=f"portal:{ctx.principal.user.user_id}")
    return RedirectResponse(_list_href(unread == "1"), status_code=303)
