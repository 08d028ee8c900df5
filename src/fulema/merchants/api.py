"""Operator endpoints for merchants (/ops/v1): a thin layer over `merchants.service`.

Every route needs an operator's bearer token. `OperatorRoute` checks it before FastAPI reads the
body, so a caller without the token gets UNAUTHORIZED and never learns how we validate bodies
(FastAPI would otherwise answer malformed JSON before running any dependency). Each route then
names the roles that may call it: reviewers run onboarding, risk freezes, finance sets fees.

Setting a fee rate, changing a settlement account and unfreezing need four eyes: a named
operator's call records a request (202, `ApprovalOut`) that a second operator approves at
/ops/v1/approvals; the bootstrap token (break glass) acts at once. Reads that show personal
data (the merchant list and detail: contact phone, settlement account) are recorded in the
audit trail before the data is handed over.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from fulema.core import approvals, audit
from fulema.core.approvals import ApprovalOut
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.errors import FulemaError
from fulema.core.vocab import ChannelName
from fulema.core.web import (
    OperatorRoute,
    error_responses,
    get_db,
    get_settings,
    operator_identity,
    require_role,
)
from fulema.merchants import domain, four_eyes, plates, service, users
from fulema.merchants.domain import MerchantStatus
from fulema.merchants.lifecycle import mask_account
from fulema.merchants.schemas import (
    AppBody,
    ApplyBody,
    AppOut,
    AppSecretOut,
    EventListOut,
    FeeRateBody,
    FeeRateOut,
    MerchantDetailOut,
    MerchantListOut,
    MerchantOut,
    MerchantUserBody,
    MerchantUserListOut,
    MerchantUserOut,
    NoteBody,
    PlateBody,
    PlateOut,
    ReasonBody,
    ResubmitBody,
    RevealBody,
    RevealOut,
    SearchBody,
    SettlementAccountBody,
    StoreBody,
    StoreOut,
    TerminalBody,
    TerminalOut,
)

router = APIRouter(prefix="/ops/v1", tags=["operations: merchants"], route_class=OperatorRoute)

Reviewer = Annotated[str, Depends(require_role("reviewer"))]
Onboarding = Annotated[str, Depends(require_role("reviewer", "admin"))]  # apps, closing
Risk = Annotated[str, Depends(require_role("risk", "admin"))]
Finance = Annotated[str, Depends(require_role("finance"))]
AccountChange = Annotated[str, Depends(require_role("reviewer", "finance"))]
Reader = Annotated[str, Depends(require_role("reviewer", "risk", "finance"))]
Db = Annotated[Database, Depends(get_db)]
Conf = Annotated[Settings, Depends(get_settings)]

# What each kind of operation can refuse, for the OpenAPI document (the operator token, the
# body's shape and validated parameters are added to every operation that has them).
_FOUND = (E.MERCHANT_NOT_FOUND,)
_CHANGE = (*_FOUND, E.ILLEGAL_STATE_TRANSITION, E.VALIDATION_ERROR)  # the table, reason rules
_OPEN = (*_FOUND, E.MERCHANT_CLOSED)  # changes a closed merchant cannot take


def _plate_out(settings: Settings, plate: service.PlateView) -> PlateOut:
    url = plates.plate_url(settings, plate.code)
    return PlateOut(**asdict(plate), url=url,
                    png_url=f"{settings.public_base_url.rstrip('/')}/ops/v1/plates/{plate.code}.png")


def _secret_out(issued: service.IssuedSecret) -> AppSecretOut:
    return AppSecretOut(**asdict(issued.app), secret=issued.secret)


def _reason(body: NoteBody | None) -> str | None:
    return body.reason if body else None


_PENDING: dict[int | str, dict[str, Any]] = {202: {"model": ApprovalOut,
                  "description": "A named operator's request, waiting for a second operator "
                                 "(POST /ops/v1/approvals/{id}/approve)"}}


def _answer(model: BaseModel, status_code: int = 200) -> Response:
    """A hand-made answer serialised as FastAPI serialises the others (pydantic's JSON)."""
    return Response(model.model_dump_json(), status_code=status_code,
                    media_type="application/json")


async def _ask(request: Request, db: Database, *, kind: str, merchant_id: str,
               params: dict[str, Any], summary: dict[str, Any], reason: str | None) -> Response:
    """Four eyes: record the request (202) for another operator to approve."""
    await service.get_merchant_status(db, merchant_id=merchant_id)  # MERCHANT_NOT_FOUND now
    view = await approvals.request(
        db, kind=kind, target_type="merchant", target_id=merchant_id,
        params={"merchant_id": merchant_id, **params}, summary=summary, reason=reason,
        requested_by=operator_identity(request).name)
    return _answer(ApprovalOut.model_validate(view), 202)


# --- lifecycle -------------------------------------------------------------------------------


@router.post("/merchants", status_code=201, summary="Apply (商户进件)",
             responses=error_responses(E.VALIDATION_ERROR, E.DUPLICATE_LICENCE))
async def apply_merchant(body: ApplyBody, db: Db, operator: Reviewer) -> MerchantOut:
    view = await service.apply_merchant(db, operator=operator, **body.model_dump())
    return MerchantOut.model_validate(view)


@router.get("/merchants", summary="List merchants, oldest first (cursor: starting_after)")
async def list_merchants(db: Db, operator: Reader,
                         limit: Annotated[int, Query(ge=1, le=100)] = 20,
                         starting_after: Annotated[str | None, Query(max_length=40)] = None,
                         status: MerchantStatus | None = None) -> MerchantListOut:
    page = await service.list_merchants(db, limit=limit, starting_after=starting_after,
                                        status=status)
    await audit.record_alone(db, actor=operator, action="merchant.read_list",
                             target_type="merchant", target_id="-",
                             detail={"merchant_ids": [m.id for m in page.data]})
    return MerchantListOut.model_validate(page)


@router.post("/merchants/search", summary="Find merchants by contact phone (keyed hash)",
             responses=error_responses(E.VALIDATION_ERROR))
async def search_merchants(body: SearchBody, db: Db, operator: Reader) -> MerchantListOut:
    page = await service.list_merchants(db, limit=body.limit, starting_after=body.starting_after,
                                        contact_phone=body.contact_phone)
    await audit.record_alone(db, actor=operator, action="merchant.search",
                             target_type="merchant", target_id="-",
                             detail={"merchant_ids": [m.id for m in page.data]})
    return MerchantListOut.model_validate(page)


@router.get("/merchants/{merchant_id}", summary="A merchant with its stores, terminals, apps, "
            "fee rates and plates",
            responses=error_responses(*_FOUND))
async def get_merchant(merchant_id: str, db: Db, settings: Conf,
                       operator: Reader) -> MerchantDetailOut:
    d = await service.get_merchant(db, merchant_id=merchant_id)
    await audit.record_alone(db, actor=operator, action="merchant.read", target_type="merchant",
                             target_id=merchant_id)
    return MerchantDetailOut(
        **asdict(d.merchant), stores=[StoreOut.model_validate(x) for x in d.stores],
        terminals=[TerminalOut.model_validate(x) for x in d.terminals],
        apps=[AppOut.model_validate(x) for x in d.apps],
        fee_rates=[FeeRateOut.model_validate(x) for x in d.fee_rates],
        plates=[_plate_out(settings, p) for p in d.plates])


@router.post("/merchants/{merchant_id}/reveal",
             summary="Show the settlement account or phone whole (finance; audited)",
             responses=error_responses(*_FOUND))
async def reveal(merchant_id: str, body: RevealBody, db: Db,
                 operator: Annotated[str, Depends(require_role("finance"))]) -> RevealOut:
    """Answers mask these fields everywhere; this is the one way a person reads them whole,
    and each call is an audit record (who, which fields, why)."""
    return RevealOut.model_validate(await service.reveal_contact(
        db, merchant_id=merchant_id, fields=tuple(body.fields), reason=body.reason,
        operator=operator))


@router.get("/merchants/{merchant_id}/events", summary="The merchant's audit trail",
            responses=error_responses(*_FOUND))
async def list_events(merchant_id: str, db: Db, _: Reader) -> EventListOut:
    return EventListOut.model_validate({"data": await service.list_events(db, merchant_id=merchant_id)})


@router.post("/merchants/{merchant_id}/approve", summary="Approve (审核通过)",
             responses=error_responses(*_CHANGE))
async def approve(merchant_id: str, db: Db, operator: Reviewer,
                  body: NoteBody | None = None) -> MerchantOut:
    return MerchantOut.model_validate(await service.approve(
        db, merchant_id=merchant_id, reason=_reason(body), operator=operator))


@router.post("/merchants/{merchant_id}/reject", summary="Reject with a reason (审核驳回)",
             responses=error_responses(*_CHANGE))
async def reject(merchant_id: str, body: ReasonBody, db: Db, operator: Reviewer) -> MerchantOut:
    return MerchantOut.model_validate(await service.reject(
        db, merchant_id=merchant_id, reason=body.reason, operator=operator))


@router.post("/merchants/{merchant_id}/resubmit", summary="Resubmit a rejected application",
             responses=error_responses(*_CHANGE, E.DUPLICATE_LICENCE))
async def resubmit(merchant_id: str, body: ResubmitBody, db: Db, operator: Reviewer) -> MerchantOut:
    return MerchantOut.model_validate(await service.resubmit(
        db, merchant_id=merchant_id, operator=operator, **body.model_dump(exclude_none=True)))


@router.post("/merchants/{merchant_id}/activate", summary="Activate (激活)",
             responses=error_responses(*_CHANGE))
async def activate(merchant_id: str, db: Db, operator: Reviewer,
                   body: NoteBody | None = None) -> MerchantOut:
    return MerchantOut.model_validate(await service.activate(
        db, merchant_id=merchant_id, reason=_reason(body), operator=operator))


@router.post("/merchants/{merchant_id}/freeze", summary="Freeze with a reason (冻结)",
             responses=error_responses(*_CHANGE))
async def freeze(merchant_id: str, body: ReasonBody, db: Db, operator: Risk) -> MerchantOut:
    return MerchantOut.model_validate(await service.freeze(
        db, merchant_id=merchant_id, reason=body.reason, operator=operator))


@router.post("/merchants/{merchant_id}/unfreeze", response_model=MerchantOut,
             summary="Unfreeze (解冻): four eyes, approved by another risk operator",
             responses={**error_responses(*_CHANGE), **_PENDING})
async def unfreeze(merchant_id: str, request: Request, db: Db, operator: Risk,
                   body: NoteBody | None = None) -> Response:
    if not operator_identity(request).break_glass:
        current = await service.get_merchant_status(db, merchant_id=merchant_id)
        domain.next_status(current, domain.MerchantAction.UNFREEZE)  # refuse a useless request
        return await _ask(request, db, kind=four_eyes.UNFREEZE, merchant_id=merchant_id,
                          params={"reason": _reason(body)}, summary={"unfreeze": merchant_id},
                          reason=_reason(body))
    return _answer(MerchantOut.model_validate(await service.unfreeze(
        db, merchant_id=merchant_id, reason=_reason(body), operator=operator)))


@router.post("/merchants/{merchant_id}/settlement-account", status_code=202,
             response_model=ApprovalOut,
             summary="Ask to change the settlement account: four eyes, approved by finance",
             responses={**error_responses(*_OPEN, E.VALIDATION_ERROR),
                        200: {"model": MerchantOut, "description": "Changed at once (the "
                                                                     "bootstrap token only)"}})
async def change_settlement_account(merchant_id: str, body: SettlementAccountBody,
                                    request: Request, db: Db, operator: AccountChange
                                    ) -> Response:
    if operator_identity(request).break_glass:
        view = await service.change_settlement_account(
            db, merchant_id=merchant_id, settlement_account=body.settlement_account,
            settlement_account_name=body.settlement_account_name, operator=operator,
            reason=body.reason)
        return _answer(MerchantOut.model_validate(view))
    if await service.get_merchant_status(db, merchant_id=merchant_id) is domain.MerchantStatus.CLOSED:
        raise FulemaError(E.MERCHANT_CLOSED, "the merchant is closed")
    return await _ask(request, db, kind=four_eyes.CHANGE_SETTLEMENT_ACCOUNT,
                      merchant_id=merchant_id, params=body.model_dump(),
                      summary={"settlement_account": mask_account(body.settlement_account)},
                      reason=body.reason)


@router.post("/merchants/{merchant_id}/close", summary="Close (注销); final",
             responses=error_responses(*_CHANGE))
async def close(merchant_id: str, db: Db, operator: Onboarding,
                body: NoteBody | None = None) -> MerchantOut:
    return MerchantOut.model_validate(await service.close(
        db, merchant_id=merchant_id, reason=_reason(body), operator=operator))


# --- stores and terminals --------------------------------------------------------------------


@router.post("/merchants/{merchant_id}/stores", status_code=201, summary="Add a store (门店)",
             responses=error_responses(*_OPEN))
async def add_store(merchant_id: str, body: StoreBody, db: Db, operator: Reviewer) -> StoreOut:
    return StoreOut.model_validate(await service.add_store(
        db, merchant_id=merchant_id, name=body.name, address=body.address, operator=operator))


@router.post("/merchants/{merchant_id}/stores/{store_id}/disable",
             summary="Disable a store, its terminals and its plates",
             responses=error_responses(*_FOUND, E.STORE_NOT_FOUND))
async def disable_store(merchant_id: str, store_id: str, db: Db, operator: Reviewer) -> StoreOut:
    return StoreOut.model_validate(await service.disable_store(
        db, merchant_id=merchant_id, store_id=store_id, operator=operator))


@router.post("/merchants/{merchant_id}/stores/{store_id}/terminals", status_code=201,
             summary="Bind a terminal (终端): CASHIER, SPEAKER or POS",
             responses=error_responses(
                 *_OPEN, E.VALIDATION_ERROR, E.STORE_NOT_FOUND, E.DUPLICATE_TERMINAL))
async def add_terminal(merchant_id: str, store_id: str, body: TerminalBody, db: Db,
                       operator: Reviewer) -> TerminalOut:
    return TerminalOut.model_validate(await service.add_terminal(
        db, merchant_id=merchant_id, store_id=store_id, kind=body.kind, serial_no=body.serial_no,
        speaker_id=body.speaker_id, operator=operator))


@router.post("/merchants/{merchant_id}/stores/{store_id}/terminals/{terminal_id}/disable",
             summary="Disable a terminal (its device can then be bound elsewhere)",
             responses=error_responses(
                 *_FOUND, E.STORE_NOT_FOUND, E.TERMINAL_NOT_FOUND))
async def disable_terminal(merchant_id: str, store_id: str, terminal_id: str, db: Db,
                           operator: Reviewer) -> TerminalOut:
    return TerminalOut.model_validate(await service.disable_terminal(
        db, merchant_id=merchant_id, store_id=store_id, terminal_id=terminal_id,
        operator=operator))


# --- API credentials, fees, plates -----------------------------------------------------------


@router.post("/merchants/{merchant_id}/apps", status_code=201,
             summary="Create an API credential; the secret is in this answer only",
             responses=error_responses(*_OPEN, E.VALIDATION_ERROR, E.NOTIFY_URL_REFUSED))
async def create_app(merchant_id: str, body: AppBody, db: Db, operator: Onboarding,
                     settings: Conf) -> AppSecretOut:
    settings.outbound_policy().check_notify_url(body.notify_url)  # docs/security.md
    return _secret_out(await service.create_app_credential(
        db, merchant_id=merchant_id, operator=operator, name=body.name,
        rsa_public_key_pem=body.rsa_public_key_pem, notify_url=body.notify_url))


@router.post("/merchants/{merchant_id}/apps/{app_id}/rotate",
             summary="Replace the app's secret; the new one is in this answer only",
             responses=error_responses(
                 *_OPEN, E.NOT_FOUND, E.ILLEGAL_STATE_TRANSITION))
async def rotate_secret(merchant_id: str, app_id: str, db: Db, operator: Onboarding) -> AppSecretOut:
    return _secret_out(await service.rotate_secret(
        db, merchant_id=merchant_id, app_id=app_id, operator=operator))


@router.post("/merchants/{merchant_id}/apps/{app_id}/disable", summary="Disable an app",
             responses=error_responses(*_FOUND, E.NOT_FOUND))
async def disable_app(merchant_id: str, app_id: str, db: Db, operator: Onboarding) -> AppOut:
    return AppOut.model_validate(await service.disable_app(
        db, merchant_id=merchant_id, app_id=app_id, operator=operator))


@router.put("/merchants/{merchant_id}/fee-rates/{channel}", response_model=FeeRateOut,
            summary="Set a channel's fee rate (bps): four eyes, approved by another finance "
                    "operator",
            responses={**error_responses(*_OPEN, E.VALIDATION_ERROR), **_PENDING})
async def set_fee_rate(merchant_id: str, channel: ChannelName, body: FeeRateBody,
                       request: Request, db: Db, operator: Finance) -> Response:
    if not operator_identity(request).break_glass:
        if await service.get_merchant_status(db, merchant_id=merchant_id) is domain.MerchantStatus.CLOSED:
            raise FulemaError(E.MERCHANT_CLOSED, "the merchant is closed: cannot set a fee rate")
        return await _ask(request, db, kind=four_eyes.SET_FEE_RATE, merchant_id=merchant_id,
                          params={"channel": channel.value, "bps": body.bps},
                          summary={"channel": channel.value, "bps": body.bps},
                          reason=body.reason)
    return _answer(FeeRateOut.model_validate(await service.set_fee_rate(
        db, merchant_id=merchant_id, channel=channel.value, bps=body.bps, operator=operator)))


@router.post("/merchants/{merchant_id}/plates", status_code=201,
             summary="Create a QR plate (收款码牌) for a store",
             responses=error_responses(*_OPEN, E.STORE_NOT_FOUND))
async def create_plate(merchant_id: str, body: PlateBody, db: Db, settings: Conf,
                       operator: Reviewer) -> PlateOut:
    plate = await service.create_plate(db, merchant_id=merchant_id, store_id=body.store_id,
                                       operator=operator)
    return _plate_out(settings, plate)


@router.post("/plates/{code}/disable", summary="Disable a QR plate",
             responses=error_responses(*_FOUND, E.PLATE_NOT_FOUND))
async def disable_plate(code: str, db: Db, settings: Conf, operator: Reviewer) -> PlateOut:
    return _plate_out(settings, await service.disable_plate(db, code=code, operator=operator))


@router.get("/plates/{code}.png", response_class=Response, summary="The plate's QR code as PNG",
            responses={**error_responses(E.PLATE_NOT_FOUND), 200: {"content": {"image/png": {}}}})
async def plate_png(code: str, db: Db, settings: Conf, _: Reader) -> Response:
    plate = await service.get_plate(db, code=code)
    return Response(plates.plate_png(plates.plate_url(settings, plate.code)),
                    media_type="image/png")


# --- portal users (docs/portal.md) -------------------------------------------------------------


@router.post("/merchants/{merchant_id}/users", status_code=201,
             summary="Create a merchant portal user (usually its owner)",
             responses=error_responses(*_OPEN, E.MERCHANT_USER_EXISTS))
async def create_portal_user(merchant_id: str, body: MerchantUserBody, db: Db,
                             operator: Onboarding) -> MerchantUserOut:
    return await users.create_user(db, merchant_id=merchant_id, login_name=body.login_name,
                                   display_name=body.display_name, role=body.role,
                                   password=body.password, actor=operator)


@router.get("/merchants/{merchant_id}/users", summary="A merchant's portal users")
async def list_portal_users(merchant_id: str, db: Db, _: Reader) -> MerchantUserListOut:
    return MerchantUserListOut(data=await users.list_users(db, merchant_id=merchant_id))
