"""Charity donations (公益捐款): projects with a target and a window, donations through any
channel (the seed's case: e-CNY from mobile banking), optional anonymity, a certificate, and the
live progress of each project.

A donation is an order for the organisation's merchant. When it is paid (consumer
`billing.donations`), the donation becomes PAID and the project's total moves by its amount in
one transaction, guarded by the donation's state: a second delivery of the event moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.billing.domain import check_project_open, donor_shown, progress_bps
from fulema.billing.models import CharityProject, Donation
from fulema.core.clock import as_utc, clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import Event, first_delivery, receipts_among, write_receipts
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.core.vocab import ChannelName, WayCode
from fulema.merchants import service as merchants
from fulema.payments import service as payments
from fulema.payments.schemas import OrderOut

CONSUMER = "billing.donations"


@dataclass(frozen=True)
class ProjectView:
    project_id: str
    name: str
    organisation: str
    target_amount: int
    raised_amount: int
    donations: int
    progress_bps: int
    starts_at: datetime
    ends_at: datetime
    status: str
    open_now: bool


@dataclass(frozen=True)
class DonationView:
    donation_id: str
    project_id: str
    amount: int
    donor: str  # as shown: the name, or 爱心人士 when anonymous
    anonymous: bool
    status: str
    order_id: str | None
    channel: str
    certificate_no: str | None
    paid_at: datetime | None
    created_at: datetime


def project_view(p: CharityProject) -> ProjectView:
    now = clock.now()
    return ProjectView(
        project_id=p.id, name=p.name, organisation=p.organisation,
        target_amount=p.target_amount.fen, raised_amount=p.raised_amount.fen,
        donations=p.donations, progress_bps=progress_bps(p.raised_amount.fen, p.target_amount.fen),
        starts_at=p.starts_at, ends_at=p.ends_at, status=p.status,
        open_now=p.status == "OPEN" and as_utc(p.starts_at) <= now < as_utc(p.ends_at))


def donation_view(d: Donation) -> DonationView:
    return DonationView(donation_id=d.id, project_id=d.project_id, amount=d.amount.fen,
                        donor=donor_shown(d.donor_name, d.anonymous), anonymous=d.anonymous,
                        status=d.status, order_id=d.order_id, channel=d.channel,
                        certificate_no=d.certificate_no, paid_at=d.paid_at,
                        created_at=d.created_at)


async def create_project(db: Database, *, name: str, organisation: str, merchant_id: str,
                         target: Money, starts_at: datetime, ends_at: datetime) -> ProjectView:
    if not target.is_positive:
        raise FulemaError(ErrorCode.INVALID_AMOUNT, "the target must be positive")
    if as_utc(ends_at) <= as_utc(starts_at):
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "ends_at must be after starts_at")
    await merchants.get_merchant(db, merchant_id=merchant_id)  # MERCHANT_NOT_FOUND
    async with db.transaction() as s:
        p = CharityProject(id=new_id("chp"), name=name, organisation=organisation,
                           merchant_id=merchant_id, target_amount=target,
                           raised_amount=Money.zero(), donations=0, starts_at=starts_at,
                           ends_at=ends_at, status="OPEN", created_at=clock.now())
        s.add(p)
    return project_view(p)


async def close_project(db: Database, *, project_id: str) -> ProjectView:
    async with db.transaction() as s:
        p = await s.get(CharityProject, project_id)
        if p is None:
            raise FulemaError(ErrorCode.CHARITY_PROJECT_NOT_FOUND, f"no project {project_id}")
        p.status = "CLOSED"
        return project_view(p)


async def get_project(db: Database, *, project_id: str) -> ProjectView:
    async with db.transaction() as s:
        p = await s.get(CharityProject, project_id)
    if p is None:
        raise FulemaError(ErrorCode.CHARITY_PROJECT_NOT_FOUND, f"no project {project_id}")
    return project_view(p)


async def list_projects(db: Database) -> list[ProjectView]:
    async with db.transaction() as s:
        return [project_view(p) for p in await s.scalars(
            select(CharityProject).order_by(CharityProject.created_at.desc()))]


async def donate(deps: payments.Deps, *, project_id: str, amount: Money, channel: ChannelName,
                 way_code: WayCode = WayCode.QR_DYNAMIC, donor_name: str | None = None,
                 anonymous: bool = False, payer_id: str | None = None
                 ) -> tuple[DonationView, OrderOut]:
    async with deps.db.transaction() as s:
        p = await s.get(CharityProject, project_id)
    if p is None:
        raise FulemaError(ErrorCode.CHARITY_PROJECT_NOT_FOUND, f"no project {project_id}")
    check_project_open(status=p.status, starts_at=as_utc(p.starts_at),
                       ends_at=as_utc(p.ends_at), now=clock.now())
    if not amount.is_positive:
        raise FulemaError(ErrorCode.INVALID_AMOUNT)
    app = await merchants.default_app_for_merchant(deps.db, merchant_id=p.merchant_id)
    if app is None:
        raise FulemaError(ErrorCode.CHARITY_PROJECT_CLOSED, "the project has no collecting app")
    now = clock.now()
    d = Donation(id=new_id("don"), project_id=p.id, amount=amount,
                 donor_name=None if anonymous else donor_name, anonymous=anonymous,
                 status="CREATED", order_id=None, channel=channel.value, certificate_no=None,
                 paid_on=None, paid_at=None, created_at=now)
    async with deps.db.transaction() as s:
        s.add(d)
    order = await payments.create_order(
        deps, merchant_id=p.merchant_id, app_id=app.app_id, new=payments.NewOrder(
            out_trade_no=d.id, amount=amount, subject=f"{p.organisation} {p.name}"[:128],
            way_code=way_code, channel=channel, payer_id=payer_id, attach=f"donation:{d.id}"))
    async with deps.db.transaction() as s:
        await s.execute(update(Donation).where(Donation.id == d.id).values(
            order_id=order.order_id))
    d.order_id = order.order_id
    return donation_view(d), order


async def on_donation_event(db: Database, event: Event) -> None:
    """payment.succeeded of a donation order: the donation is PAID and the project's total
    moves, once (receipt, and the donation's CREATED state as the guard); failed or closed
    unpaid: the donation is CLOSED."""
    order_id = event.payload.get("order_id")
    if not order_id:
        return
    async with db.transaction() as s:
        d = await s.scalar(select(Donation).where(Donation.order_id == order_id)
                           .with_for_update())
        if d is None or d.status != "CREATED":
            return
        if not await first_delivery(s, CONSUMER, event.id):
            return
        await _apply(s, event, d)


async def on_donation_events(db: Database, events: list[Event]) -> None:
    """A dispatcher round in one transaction: one locking look-up of the round's orders
    (`order_id IN (...)`) finds the few that are donations; only their events are checked for
    a receipt and, in order, handled as `on_donation_event` handles one (a receipt only for an
    event that found its donation CREATED). A round of ordinary payments costs that SELECT."""
    ids = sorted({str(e.payload["order_id"]) for e in events if e.payload.get("order_id")})
    if not ids:
        return
    async with db.transaction() as s:
        donations = {d.order_id: d for d in (await s.scalars(
            select(Donation).where(Donation.order_id.in_(ids)).order_by(Donation.id)
            .with_for_update())).all()}
        if not donations:
            return
        mine = [e for e in events if e.payload.get("order_id") in donations]
        seen = await receipts_among(s, CONSUMER, [e.id for e in mine])
        acted: list[str] = []
        for event in mine:
            d = donations[str(event.payload["order_id"])]
            if d.status != "CREATED" or event.id in seen:
                continue
            seen.add(event.id)
            acted.append(event.id)
            await _apply(s, event, d)
        await write_receipts(s, CONSUMER, acted)


async def _apply(s: AsyncSession, event: Event, d: Donation) -> None:
    """One event's change to a CREATED donation (its receipt written or about to be)."""
    if event.topic != "payment.succeeded":
        d.status = "CLOSED"
        return
    now = clock.now()
    d.status, d.paid_at, d.paid_on = "PAID", now, now.date()
    d.certificate_no = "JZ" + d.id.split("_", 1)[1].upper()
    await s.execute(update(CharityProject).where(CharityProject.id == d.project_id).values(
        raised_amount=CharityProject.raised_amount + d.amount,
        donations=CharityProject.donations + 1))


async def get_donation(db: Database, *, donation_id: str) -> DonationView:
    async with db.transaction() as s:
        d = await s.get(Donation, donation_id)
    if d is None:
        raise FulemaError(ErrorCode.DONATION_NOT_FOUND, f"no donation {donation_id}")
    return donation_view(d)


async def certificate_pdf(db: Database, *, donation_id: str) -> bytes:
    """The donation certificate (捐赠证书) as a one-page PDF: number, donor, project, amount,
    date. Only for a paid donation."""
    from fulema.billing.certificate import certificate

    async with db.transaction() as s:
        d = await s.get(Donation, donation_id)
        p = await s.get(CharityProject, d.project_id) if d is not None else None
    if d is None or p is None or d.status != "PAID" or d.certificate_no is None:
        raise FulemaError(ErrorCode.DONATION_NOT_FOUND, f"no paid donation {donation_id}")
    assert d.paid_on is not None
    return certificate(number=d.certificate_no, donor=donor_shown(d.donor_name, d.anonymous),
                       project=p.name, organisation=p.organisation, amount_fen=d.amount.fen,
                       on=d.paid_on)
