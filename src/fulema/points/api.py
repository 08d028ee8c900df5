"""Operator endpoints for points (`/ops/v1/points`): a payer's statement, adjustments and
redemptions outside a payment; each change audited. A payer's key is `<channel>:<payer id>`
(e.g. `wechat:o6_bmjrPTlm6_2sgVt7hMZOPfL2M`) or `cust:<bank customer id>`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode
from fulema.core.web import OperatorRoute, error_responses, get_db, get_settings, require_role
from fulema.points import service as points
from fulema.points.service import StatementOut

E = ErrorCode
router = APIRouter(prefix="/ops/v1/points", tags=["operations: points"],
                   route_class=OperatorRoute)
Db = Annotated[Database, Depends(get_db)]
Conf = Annotated[Settings, Depends(get_settings)]
# A payer's points statement is personal data: not for merchant reviewers.
Reader = Annotated[str, Depends(require_role("risk", "finance", "admin"))]
Finance = Annotated[str, Depends(require_role("finance", "admin"))]


class PointsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: StrictInt = Field(description="adjust: signed; redeem: positive")
    reason: str = Field(min_length=1, max_length=128)


@router.get("/accounts/{payer_key}", summary="A payer's balance, live lots and statement",
            responses=error_responses(E.POINTS_ACCOUNT_NOT_FOUND))
async def statement(payer_key: str, db: Db, _: Reader) -> StatementOut:
    return await points.statement(db, key=payer_key)


@router.post("/accounts/{payer_key}/adjust", summary="Add (or take) points by hand",
             responses=error_responses(E.POINTS_ACCOUNT_NOT_FOUND, E.INVALID_POINTS,
                                       E.POINTS_INSUFFICIENT))
async def adjust(payer_key: str, body: PointsBody, db: Db, settings: Conf,
                 actor: Finance) -> StatementOut:
    return await points.adjust(db, settings, actor=actor, key=payer_key, points=body.points,
                               reason=body.reason)


@router.post("/accounts/{payer_key}/redeem", summary="Spend points outside a payment",
             responses=error_responses(E.POINTS_ACCOUNT_NOT_FOUND, E.INVALID_POINTS,
                                       E.POINTS_INSUFFICIENT))
async def redeem(payer_key: str, body: PointsBody, db: Db, actor: Finance) -> StatementOut:
    return await points.redeem(db, actor=actor, key=payer_key, points=body.points,
                               reason=body.reason)
