"""Message center endpoints: the operator's delivery log (search, resend) and notices under
/ops/v1/messages, and the live speaker feed page of the embedded default (/messages/feed)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from html import escape
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.errors import FulemaError
from fulema.core.web import OperatorRoute, error_responses, get_db, get_settings, require_role
from fulema.messaging import notices, speakers
from fulema.messaging.hub import SpeakerHub
from fulema.messaging.transport import LogFeed

router = APIRouter(prefix="/ops/v1/messages", tags=["operations: messages"],
                   route_class=OperatorRoute)
feed_router = APIRouter(tags=["speaker feed (development)"])

Db = Annotated[Database, Depends(get_db)]
Conf = Annotated[Settings, Depends(get_settings)]
Operator = Annotated[str, Depends(require_role("admin", "reviewer"))]
Status = Literal["PENDING", "SENT", "ACKED", "LOGGED", "EXPIRED"]


class SpeakerMessageOut(BaseModel):
    message_id: str
    event_id: str
    speaker_id: str
    merchant_id: str
    store_id: str
    order_id: str
    amount: int = Field(description="Integer fen")
    channel: str
    text: str = Field(description="What the speaker says")
    status: Status
    attempts: int = Field(description="How many times it was sent")
    next_attempt_at: datetime | None
    last_sent_at: datetime | None
    acked_at: datetime | None
    paid_at: datetime | None
    created_at: datetime
    expires_at: datetime = Field(description="Unacknowledged by then: EXPIRED")


class SpeakerMessageListOut(BaseModel):
    data: list[SpeakerMessageOut] = Field(description="Newest first")


class NoticeOut(BaseModel):
    id: str
    kind: str
    severity: str
    merchant_id: str | None
    summary: str
    created_at: datetime
    read_at: datetime | None
    read_by: str | None


class NoticeListOut(BaseModel):
    data: list[NoticeOut]


@router.get("/speaker", summary="Search the speaker delivery log, newest first")
async def search_speaker_messages(
        db: Db, _: Operator,
        speaker_id: Annotated[str | None, Query(max_length=64)] = None,
        order_id: Annotated[str | None, Query(max_length=40)] = None,
        merchant_id: Annotated[str | None, Query(max_length=40)] = None,
        status: Status | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        starting_after: Annotated[str | None, Query(max_length=40)] = None,
) -> SpeakerMessageListOut:
    found = await speakers.search_messages(db, speaker_id=speaker_id, order_id=order_id,
                                           merchant_id=merchant_id, status=status, limit=limit,
                                           starting_after=starting_after)
    return SpeakerMessageListOut(data=[SpeakerMessageOut(**asdict(m)) for m in found])


@router.post("/speaker/{message_id}/resend", summary="Send a speaker message again now",
             responses=error_responses(E.MESSAGE_NOT_FOUND))
async def resend_speaker_message(message_id: str, db: Db, settings: Conf,
                                 operator: Operator) -> SpeakerMessageOut:
    view = await speakers.resend(db, message_id=message_id, operator=operator, settings=settings)
    return SpeakerMessageOut(**asdict(view))


@router.get("/notices", summary="Operators' in-portal notices (risk alerts), newest first")
async def list_notices(db: Db, _: Operator, unread: bool = True,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> NoticeListOut:
    found = await notices.list_notices(db, unread_only=unread, limit=limit)
    return NoticeListOut(data=[NoticeOut(**asdict(n)) for n in found])


@router.post("/notices/{notice_id}/read", summary="Mark a notice read",
             responses=error_responses(E.NOT_FOUND))
async def read_notice(notice_id: str, db: Db, operator: Operator) -> NoticeOut:
    return NoticeOut(**asdict(await notices.mark_read(db, notice_id=notice_id,
                                                      operator=operator)))


# --- the live feed (embedded default, development only) -------------------------------------


def _feed(request: Request) -> LogFeed:
    """The log feed, where there is one: development, no broker configured. Elsewhere the
    page does not exist (every store's takings are not for an unauthenticated page)."""
    settings: Settings = request.app.state.settings
    hub = getattr(request.app.state, "speakers", None)
    feed = hub.feed if isinstance(hub, SpeakerHub) else None
    if not settings.is_development or feed is None:
        raise FulemaError(E.NOT_FOUND, "the speaker feed exists only in development, "
                                       "without an MQTT broker")
    return feed


class FeedItemOut(BaseModel):
    seq: int
    at: datetime
    speaker_id: str
    text: str
    amount_yuan: str
    channel: str
    message_id: str


class FeedOut(BaseModel):
    items: list[FeedItemOut] = Field(description="Oldest first, after the seq asked for")


@feed_router.get("/messages/feed.json", summary="Speaker feed items after `after`",
                 responses=error_responses(E.NOT_FOUND))
async def feed_json(request: Request, after: Annotated[int, Query(ge=0)] = 0) -> FeedOut:
    return FeedOut(items=[FeedItemOut(**asdict(i)) for i in _feed(request).after(after)])


_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>云喇叭 Speaker feed</title>
<style>body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;
background:#f4f5f7}main{max-width:640px;margin:0 auto;padding:24px 16px}
li{background:#fff;border-radius:8px;padding:10px 14px;margin:8px 0;list-style:none;
box-shadow:0 1px 3px rgba(0,0,0,.08)}.t{font-size:20px}.m{color:#667;font-size:13px}</style>
</head><body><main><h1>云喇叭 Speaker feed</h1>
<p class="m">No MQTT broker is configured: every announcement a speaker would play is shown
here as it is sent (newest first).</p><ul id="feed">ITEMS</ul></main>
<script>
var last=LAST;
function esc(s){var d=document.createElement('div');d.textContent=s;return d.innerHTML;}
function poll(){fetch('/messages/feed.json?after='+last).then(function(r){return r.json();})
.then(function(b){b.items.forEach(function(i){last=i.seq;var li=document.createElement('li');
li.innerHTML='<div class="t">'+esc(i.text)+'</div><div class="m">'+esc(i.speaker_id)+' · '
+esc(i.channel)+' · '+esc(i.amount_yuan)+' 元 · '+esc(i.at)+'</div>';
var ul=document.getElementById('feed');ul.insertBefore(li,ul.firstChild);});})
.catch(function(){}).then(function(){setTimeout(poll,1000);});}
setTimeout(poll,1000);
</script></body></html>"""


@feed_router.get("/messages/feed", response_class=HTMLResponse,
                 summary="Live speaker feed page (development, no broker)",
                 responses=error_responses(E.NOT_FOUND))
async def feed_page(request: Request) -> HTMLResponse:
    feed = _feed(request)
    items = list(feed.items)
    rows = "".join(
        f'<li><div class="t">{escape(i.text)}</div><div class="m">{escape(i.speaker_id)} · '
        f"{escape(i.channel)} · {escape(i.amount_yuan)} 元 · {i.at.isoformat()}</div></li>"
        for i in reversed(items))
    last = items[-1].seq if items else 0
    return HTMLResponse(_PAGE.replace("ITEMS", rows).replace("LAST", str(last)))
