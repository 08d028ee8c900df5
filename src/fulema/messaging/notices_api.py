"""The merchant's own in-portal notices over the signed merchant API (/api/v1/notices): a
settlement payout that reached its account, a risk alert naming it.

Signed like every merchant call (the query string is part of the signed path), so the query
is validated only after the signature: an unsigned caller learns nothing. The merchant is the
signing app's, never one from the request; another merchant's notice answers
`NOTICE_NOT_FOUND`, exactly as an unknown id does."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.web import error_responses, get_db, json_response
from fulema.gateway.signed import SIGNED, Signed
from fulema.messaging import notices

merchant_router = APIRouter(prefix="/api/v1", tags=["merchant API"])
Db = Annotated[Database, Depends(get_db)]


class MyNoticeOut(BaseModel):
    """One of the merchant's notices. `read_by` says who marked it read: `app:<app_id>` (this
    API), `portal:<user_id>` (the portal) or an operator's name."""

    id: str
    kind: str = Field(description="settlement.paid, or the risk alert's kind")
    severity: str = Field(description="info, low, medium, high")
    summary: str = Field(description="The notice's text, e.g. 结算款 99.62 元已到账")
    created_at: datetime
    read_at: datetime | None
    read_by: str | None


class MyNoticeListOut(BaseModel):
    data: list[MyNoticeOut] = Field(description="Newest first")
    has_more: bool = Field(description="More follow: ask again with starting_after = the last id")
    unread_count: int = Field(description=f"Unread notices, counted up to "
                                          f"{notices.UNREAD_SHOWN_MAX + 1}")


def _out(view: notices.NoticeView) -> MyNoticeOut:
    fields = asdict(view)
    fields.pop("merchant_id")
    return MyNoticeOut(**fields)


@merchant_router.get("/notices", summary="Your in-portal notices, newest first (cursor: starting_after)",
                     response_model=MyNoticeListOut,
                     responses=error_responses(*SIGNED, E.VALIDATION_ERROR))
async def my_notices(db: Db, signed: Signed,
                     unread: Annotated[bool, Query(description="Only unread ones")] = False,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20,
                     starting_after: Annotated[str | None, Query(max_length=40)] = None
                     ) -> Response:
    merchant_id = signed.cred.merchant_id
    found, more = await notices.list_notices_of(db, merchant_id=merchant_id, unread_only=unread,
                                                limit=limit, starting_after=starting_after)
    count = await notices.unread_count(db, merchant_id=merchant_id)
    return json_response(MyNoticeListOut(data=[_out(n) for n in found], has_more=more,
                                         unread_count=count))


@merchant_router.post("/notices/{notice_id}/read", summary="Mark one of your notices read",
                      response_model=MyNoticeOut,
                      responses=error_responses(*SIGNED, E.NOTICE_NOT_FOUND))
async def read_my_notice(db: Db, signed: Signed,
                         notice_id: str) -> Response:
    """Marking a notice read twice keeps the first time and reader. No body is read."""
    cred = signed.cred
    view = await notices.mark_read_of(db, merchant_id=cred.merchant_id, notice_id=notice_id,
                                      reader=f"app:{cred.app_id}")
    return json_response(_out(view))
