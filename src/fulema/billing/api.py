"""Bill payment and charity endpoints.

Payer-facing (what mobile banking, the H5 pages and mini-programs call; the payment itself is an
ordinary order the payer completes in the channel): /bills/v1 and /charity/v1. Operators
(token and role): /ops/v1/billers, /ops/v1/bill-payments, /ops/v1/charity/projects.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from fulema.billing import bills, charity
from fulema.billing.billers import ACCOUNT_PATTERN, BillerRegistry
from fulema.core import audit
from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.errors import FulemaError
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.core.web import OperatorRoute, error_responses, get_db, require_role
from fulema.payments import service as payments
from fulema.payments.schemas import OrderOut

router = APIRouter(tags=["bill payment and charity"])
ops_router = APIRouter(prefix="/ops/v1", tags=["operations: billing"], route_class=OperatorRoute)

Db = Annotated[Database, Depends(get_db)]
Finance = Annotated[str, Depends(require_role("finance", "admin"))]
Account = Annotated[str, Path(pattern=ACCOUNT_PATTERN)]
_PAYER_WAYS = (WayCode.QR_DYNAMIC, WayCode.H5, WayCode.JSAPI, WayCode.APP)
_ORDER_ERRORS = (E.CHANNEL_NOT_ENABLED, E.CHANNEL_ERROR, E.CHANNEL_UNAVAILABLE, E.RISK_REJECTED,
                 E.MERCHANT_NOT_ACTIVE, E.MERCHANT_FROZEN, E.MERCHANT_CLOSED, E.INVALID_AMOUNT,
                 E.AMOUNT_OUT_OF_RANGE, E.PAYER_ID_REQUIRED, E.VALIDATION_ERROR)


def _deps(request: Request) -> payments.Deps:
    deps: payments.Deps = request.app.state.payments
    return deps


def _billers(request: Request) -> BillerRegistry:
    registry: BillerRegistry = request.app.state.billers
    return registry


Deps = Annotated[payments.Deps, Depends(_deps)]
Billers = Annotated[BillerRegistry, Depends(_billers)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class BillerOut(BaseModel):
    code: str
    name: str
    category: str
    merchant_id: str
    active: bool


class BillerListOut(BaseModel):
    data: list[BillerOut]


class BillOut(BaseModel):
    bill_id: str
    account_no: str
    holder: str = Field(description="Masked account holder")
    period: str
    amount: int = Field(description="Integer fen: pay exactly this")
    due_date: date


class BillListOut(BaseModel):
    data: list[BillOut] = Field(description="Unpaid bills of the account")


class PayBillBody(_Body):
    biller_code: str = Field(min_length=1, max_length=32)
    account_no: str = Field(pattern=ACCOUNT_PATTERN)
    bill_id: str = Field(min_length=1, max_length=64)
    amount: StrictInt = Field(gt=0, description="Integer fen; must equal the bill's amount")
    channel: ChannelName
    way_code: WayCode = WayCode.QR_DYNAMIC
    payer_id: str | None = Field(default=None, max_length=128)


class BillPaymentOut(BaseModel):
    payment_id: str
    biller_code: str
    bill_id: str
    account_no: str
    period: str
    amount: int
    status: str = Field(description="CREATED | PAID | WRITTEN_OFF | REFUNDING | REFUNDED | CLOSED")
    order_id: str | None
    channel: str
    writeoff_attempts: int
    receipt_no: str | None = Field(description="The biller's write-off number, once written off")
    last_error: str | None
    paid_at: datetime | None
    written_off_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime


class BillPaymentListOut(BaseModel):
    data: list[BillPaymentOut]


class PayBillOut(BaseModel):
    payment: BillPaymentOut
    order: OrderOut = Field(description="The order to pay (code_url, h5_url or pay_params)")


class ReceiptOut(BaseModel):
    receipt_no: str
    biller: str
    account_no: str
    period: str
    amount_yuan: str
    paid_at: datetime | None
    written_off_at: datetime | None
    payment_id: str


def _payment_out(v: bills.BillPaymentView) -> BillPaymentOut:
    return BillPaymentOut(**asdict(v))


@router.get("/bills/v1/billers", summary="Billers (water, electricity, gas, telecom, ...)")
async def list_billers(db: Db) -> BillerListOut:
    return BillerListOut(data=[BillerOut(**asdict(b)) for b in await bills.list_billers(db)])


@router.get("/bills/v1/billers/{biller_code}/accounts/{account_no}/bills",
            summary="Inquire an account's unpaid bills",
            responses=error_responses(E.BILLER_NOT_FOUND, E.BILL_NOT_FOUND))
async def inquire(biller_code: str, account_no: Account, db: Db, billers: Billers) -> BillListOut:
    found = await bills.inquire(db, billers, biller_code=biller_code, account_no=account_no)
    return BillListOut(data=[BillOut(bill_id=b.bill_id, account_no=b.account_no, holder=b.holder,
                                     period=b.period, amount=b.amount_fen, due_date=b.due_date)
                             for b in found])


@router.post("/bills/v1/payments", summary="Pay a bill: take it and open an order",
             responses=error_responses(E.BILLER_NOT_FOUND, E.BILL_NOT_FOUND,
                                       E.BILL_ALREADY_PAID, E.BILL_AMOUNT_MISMATCH,
                                       *_ORDER_ERRORS))
async def pay_bill(body: PayBillBody, deps: Deps, billers: Billers) -> PayBillOut:
    if body.way_code not in _PAYER_WAYS:
        raise FulemaError(E.VALIDATION_ERROR, "way_code: QR_DYNAMIC, H5, JSAPI or APP")
    view, order = await bills.pay_bill(
        deps, billers, biller_code=body.biller_code, account_no=body.account_no,
        bill_id=body.bill_id, amount=Money(body.amount), channel=body.channel,
        way_code=body.way_code, payer_id=body.payer_id)
    return PayBillOut(payment=_payment_out(view), order=order)


@router.get("/bills/v1/payments/{payment_id}", summary="A bill payment's state",
            responses=error_responses(E.BILL_PAYMENT_NOT_FOUND))
async def get_bill_payment(payment_id: str, db: Db) -> BillPaymentOut:
    return _payment_out(await bills.get_payment(db, payment_id=payment_id))


@router.get("/bills/v1/payments/{payment_id}/receipt", summary="The receipt of a paid bill",
            responses=error_responses(E.BILL_PAYMENT_NOT_FOUND))
async def receipt(payment_id: str, db: Db) -> ReceiptOut:
    v = await bills.get_payment(db, payment_id=payment_id)
    if v.status != "WRITTEN_OFF" or v.receipt_no is None:
        raise FulemaError(E.BILL_PAYMENT_NOT_FOUND, "no receipt: the bill is not written off")
    biller = await bills.biller_row(db, v.biller_code)
    return ReceiptOut(receipt_no=v.receipt_no, biller=biller.name, account_no=v.account_no,
                      period=v.period, amount_yuan=Money(v.amount).to_yuan(), paid_at=v.paid_at,
                      written_off_at=v.written_off_at, payment_id=v.payment_id)


@router.get("/bills/v1/billers/{biller_code}/accounts/{account_no}/payments",
            summary="The account's payment history, newest first",
            responses=error_responses(E.BILLER_NOT_FOUND))
async def account_history(biller_code: str, account_no: Account, db: Db,
                          limit: Annotated[int, Query(ge=1, le=100)] = 20) -> BillPaymentListOut:
    found = await bills.history(db, biller_code=biller_code, account_no=account_no, limit=limit)
    return BillPaymentListOut(data=[_payment_out(v) for v in found])


# --- charity ----------------------------------------------------------------------------------


class ProjectOut(BaseModel):
    project_id: str
    name: str
    organisation: str
    target_amount: int
    raised_amount: int
    donations: int
    progress_bps: int = Field(description="raised / target in basis points, rounded down")
    starts_at: datetime
    ends_at: datetime
    status: str
    open_now: bool


class ProjectListOut(BaseModel):
    data: list[ProjectOut]


class DonateBody(_Body):
    amount: StrictInt = Field(gt=0, description="Integer fen")
    channel: ChannelName
    way_code: WayCode = WayCode.QR_DYNAMIC
    donor_name: str | None = Field(default=None, min_length=1, max_length=64)
    anonymous: bool = False
    payer_id: str | None = Field(default=None, max_length=128)


class DonationOut(BaseModel):
    donation_id: str
    project_id: str
    amount: int
    donor: str = Field(description="The name, or 爱心人士 for an anonymous donor")
    anonymous: bool
    status: str = Field(description="CREATED | PAID | CLOSED")
    order_id: str | None
    channel: str
    certificate_no: str | None
    paid_at: datetime | None
    created_at: datetime


class DonateOut(BaseModel):
    donation: DonationOut
    order: OrderOut


@router.get("/charity/v1/projects", summary="Charity projects with their live progress")
async def list_projects(db: Db) -> ProjectListOut:
    return ProjectListOut(data=[ProjectOut(**asdict(p)) for p in await charity.list_projects(db)])


@router.get("/charity/v1/projects/{project_id}", summary="A project and its progress",
            responses=error_responses(E.CHARITY_PROJECT_NOT_FOUND))
async def get_project(project_id: str, db: Db) -> ProjectOut:
    return ProjectOut(**asdict(await charity.get_project(db, project_id=project_id)))


@router.post("/charity/v1/projects/{project_id}/donations", summary="Donate: open an order",
             responses=error_responses(E.CHARITY_PROJECT_NOT_FOUND, E.CHARITY_PROJECT_CLOSED,
                                       *_ORDER_ERRORS))
async def donate(project_id: str, body: DonateBody, deps: Deps) -> DonateOut:
    view, order = await charity.donate(
        deps, project_id=project_id, amount=Money(body.amount), channel=body.channel,
        way_code=body.way_code, donor_name=body.donor_name, anonymous=body.anonymous,
        payer_id=body.payer_id)
    return DonateOut(donation=DonationOut(**asdict(view)), order=order)


@router.get("/charity/v1/donations/{donation_id}", summary="A donation's state",
            responses=error_responses(E.DONATION_NOT_FOUND))
async def get_donation(donation_id: str, db: Db) -> DonationOut:
    return DonationOut(**asdict(await charity.get_donation(db, donation_id=donation_id)))


@router.get("/charity/v1/donations/{donation_id}/certificate.pdf",
            summary="The donation certificate (PDF), once paid", response_class=Response,
            responses={**error_responses(E.DONATION_NOT_FOUND),
                       200: {"content": {"application/pdf": {}}}})
async def donation_certificate(donation_id: str, db: Db) -> Response:
    pdf = await charity.certificate_pdf(db, donation_id=donation_id)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{donation_id}.pdf"'})


# --- operators --------------------------------------------------------------------------------


class BillerBody(_Body):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{1,31}$")
    name: str = Field(min_length=1, max_length=64)
    category: str = Field(description=", ".join(bills.CATEGORIES))
    merchant_id: str = Field(min_length=1, max_length=40)
    adapter: str = Field(default="sandbox", pattern=r"^[a-z0-9_]{1,32}$")


class ProjectBody(_Body):
    name: str = Field(min_length=1, max_length=64)
    organisation: str = Field(min_length=1, max_length=64)
    merchant_id: str = Field(min_length=1, max_length=40)
    target_amount: StrictInt = Field(gt=0, description="Integer fen")
    starts_at: datetime
    ends_at: datetime


async def _audit(db: Database, actor: str, action: str, target_type: str, target_id: str,
                 detail: dict[str, Any]) -> None:
    async with db.transaction() as s:
        await audit.record(s, actor=actor, action=action, target_type=target_type,
                           target_id=target_id, detail=detail)


@ops_router.post("/billers", status_code=201, summary="Register a biller (a merchant)",
                 responses=error_responses(E.MERCHANT_NOT_FOUND, E.VALIDATION_ERROR))
async def register_biller(body: BillerBody, db: Db, operator: Finance) -> BillerOut:
    view = await bills.register_biller(db, **body.model_dump())
    await _audit(db, operator, "biller.register", "biller", view.code,
                 {"category": view.category, "merchant_id": view.merchant_id})
    return BillerOut(**asdict(view))


@ops_router.get("/bill-payments", summary="Bill payments of an account, newest first",
                responses=error_responses(E.BILLER_NOT_FOUND))
async def ops_bill_payments(db: Db, _: Finance, biller_code: str,
                            account_no: Annotated[str, Query(pattern=ACCOUNT_PATTERN)],
                            limit: Annotated[int, Query(ge=1, le=100)] = 50
                            ) -> BillPaymentListOut:
    found = await bills.history(db, biller_code=biller_code, account_no=account_no, limit=limit)
    return BillPaymentListOut(data=[_payment_out(v) for v in found])


@ops_router.post("/charity/projects", status_code=201, summary="Open a charity project",
                 responses=error_responses(E.MERCHANT_NOT_FOUND, E.INVALID_AMOUNT,
                                           E.VALIDATION_ERROR))
async def create_project(body: ProjectBody, db: Db, operator: Finance) -> ProjectOut:
    view = await charity.create_project(
        db, name=body.name, organisation=body.organisation, merchant_id=body.merchant_id,
        target=Money(body.target_amount), starts_at=body.starts_at, ends_at=body.ends_at)
    await _audit(db, operator, "charity_project.create", "charity_project", view.project_id,
                 {"target_amount": view.target_amount})
    return ProjectOut(**asdict(view))


@ops_router.post("/charity/projects/{project_id}/close", summary="Close a project",
                 responses=error_responses(E.CHARITY_PROJECT_NOT_FOUND))
async def close_project(project_id: str, db: Db, operator: Finance) -> ProjectOut:
    view = await charity.close_project(db, project_id=project_id)
    await _audit(db, operator, "charity_project.close", "charity_project", project_id, {})
    return ProjectOut(**asdict(view))
