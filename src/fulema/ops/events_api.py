"""Operator endpoints for event consumers (/ops/v1/events): lag, failures, replay, skip."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.events import Consumer, admin
from fulema.core.web import OperatorRoute, error_responses, get_db, require_role

router = APIRouter(prefix="/ops/v1/events", tags=["operations: events"], route_class=OperatorRoute)

Operator = Annotated[str, Depends(require_role("admin"))]  # platform operations: admin
Db = Annotated[Database, Depends(get_db)]


def _declared(request: Request) -> dict[str, Consumer]:
    consumers: dict[str, Consumer] = request.app.state.dispatcher.consumers
    return consumers


Declared = Annotated[dict[str, Consumer], Depends(_declared)]


class ConsumerOut(BaseModel):
    name: str
    declared: bool = Field(description="Declared by the platform that answers (false: a "
                                       "consumer no process serves any more)")
    on_poison: str | None
    topics: list[str] | None
    start: str
    position: int = Field(description="Last event sequence number handled")
    head: int = Field(description="Last event sequence number given out")
    lag: int
    attempts: int = Field(description="Failures so far at the event after `position`")
    last_error: str | None
    retry_at: datetime | None
    blocked: bool = Field(description="A STOP consumer stuck at an event (alert)")
    blocked_since: datetime | None
    dead_letters: int = Field(description="Unresolved dead letters")
    updated_at: datetime


class ConsumerListOut(BaseModel):
    consumers: list[ConsumerOut]


class DeadLetterOut(BaseModel):
    id: str
    consumer: str
    event_id: str
    seq: int
    topic: str
    attempts: int
    last_error: str | None
    reason: str = Field(description="EXHAUSTED (max_attempts) or SKIPPED (by an operator)")
    created_at: datetime
    created_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


class DeadLetterListOut(BaseModel):
    dead_letters: list[DeadLetterOut]


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(default=None, max_length=40)
    from_seq: int | None = Field(default=None, ge=1)
    to_seq: int | None = Field(default=None, ge=1)


class ReplayFailureOut(BaseModel):
    event_id: str
    seq: int
    error: str


class ReplayOut(BaseModel):
    consumer: str
    replayed: int
    failed: list[ReplayFailureOut]


class SkipOut(BaseModel):
    consumer: str
    skipped_event_id: str
    seq: int
    by: str


@router.get("/consumers", summary="Every event consumer: position, lag, failures")
async def list_consumers(db: Db, declared: Declared, _: Operator) -> ConsumerListOut:
    rows: list[dict[str, Any]] = await admin.consumer_status(db, declared)
    return ConsumerListOut(consumers=[ConsumerOut.model_validate(r) for r in rows])


@router.get("/consumers/{name}/dead-letters", summary="A consumer's dead letters (cursor)")
async def list_dead_letters(name: str, db: Db, _: Operator,
                            limit: Annotated[int, Query(ge=1, le=100)] = 50,
                            starting_after: Annotated[str | None, Query(max_length=40)] = None,
                            include_resolved: bool = False) -> DeadLetterListOut:
    rows = await admin.dead_letters(db, name, limit=limit, starting_after=starting_after,
                                    include_resolved=include_resolved)
    return DeadLetterListOut(dead_letters=[DeadLetterOut.model_validate(r) for r in rows])


@router.post("/consumers/{name}/replay",
             summary="Hand one event, or a range of sequence numbers, to the consumer again",
             responses=error_responses(E.EVENT_REPLAY_INVALID, E.EVENT_CONSUMER_NOT_FOUND,
                                       E.EVENT_NOT_FOUND))
async def replay(name: str, body: ReplayBody, db: Db, declared: Declared,
                 operator: Operator) -> ReplayOut:
    result = await admin.replay(db, declared, name, operator=operator, event_id=body.event_id,
                                from_seq=body.from_seq, to_seq=body.to_seq)
    return ReplayOut.model_validate(result)


@router.post("/consumers/{name}/skip",
             summary="Set aside the event a consumer is stuck at (dead letter) and go on",
             responses=error_responses(E.EVENT_CONSUMER_NOT_FOUND, E.EVENT_CONSUMER_NOT_FAILING))
async def skip(name: str, db: Db, declared: Declared, operator: Operator) -> SkipOut:
    return SkipOut.model_validate(await admin.skip_head(db, declared, name, operator=operator))
