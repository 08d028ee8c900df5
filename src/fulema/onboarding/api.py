"""Onboarding endpoints: the operators' (`/ops/v1/onboarding`, each action by a named operator
and audited) and the merchant's own status (`GET /api/v1/onboarding`, signed like every merchant
API call)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from fulema.channels.onboarding import OnboardingPort
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vocab import ChannelName
from fulema.core.web import OperatorRoute, error_responses, get_db, get_settings, require_role
from fulema.gateway.protection import admit_app
from fulema.gateway.service import authenticate
from fulema.onboarding import jobs, service
from fulema.onboarding.service import RegistrationView, SupplementView

E = ErrorCode
router = APIRouter(prefix="/ops/v1/onboarding", tags=["operations: onboarding"],
                   route_class=OperatorRoute)
merchant_router = APIRouter(prefix="/api/v1", tags=["merchant API"])
Db = Annotated[Database, Depends(get_db)]
Conf = Annotated[Settings, Depends(get_settings)]
Reader = Annotated[str, Depends(require_role("reviewer", "risk", "admin"))]
Reviewer = Annotated[str, Depends(require_role("reviewer", "admin"))]
Risk = Annotated[str, Depends(require_role("risk", "admin"))]
Admin = Annotated[str, Depends(require_role("admin"))]


def ports_of(request: Request) -> Mapping[ChannelName, OnboardingPort]:
    ports: Mapping[ChannelName, OnboardingPort] = request.app.state.onboarding_ports
    return ports


Ports = Annotated[Mapping[ChannelName, OnboardingPort], Depends(ports_of)]


def _port(ports: Mapping[ChannelName, OnboardingPort], channel: str) -> OnboardingPort:
    try:
        return ports[ChannelName(channel)]
    except (KeyError, ValueError) as exc:
        raise FulemaError(E.ONBOARDING_NOT_SUPPORTED,
                          f"no onboarding for channel {channel} here") from exc


class SupplementBody(BaseModel):
    """The channel fields the merchant profile does not hold; omitted fields are unchanged."""

    model_config = ConfigDict(extra="forbid")

    contact_email: str | None = Field(default=None, max_length=128,
                                      pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    service_phone: str | None = Field(default=None, pattern=r"^[0-9-]{5,20}$")
    settlement_bank: str | None = Field(default=None, min_length=2, max_length=64)
    address_code: str | None = Field(default=None, pattern=r"^[1-9]\d{5}$",
                                     description="6-digit administrative division code")
    wechat_sub_appid: str | None = Field(
        default=None, pattern=r"^wx[0-9a-f]{16}$",
        description="the merchant's own WeChat app (official account, mini-program or mobile "
                    "app) bound to its sub_mchid: its JSAPI/APP orders carry it as sub_appid")


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=256)


class CheckOut(BaseModel):
    merchant_id: str
    missing: dict[str, list[str]] = Field(description="per channel, the fields it lacks")


class PollOut(BaseModel):
    processed: int


@router.get("/merchants/{merchant_id}/registrations", summary="A merchant's registrations",
            responses=error_responses(E.MERCHANT_NOT_FOUND))
async def registrations(merchant_id: str, db: Db, _: Reader) -> list[RegistrationView]:
    return await service.list_registrations(db, merchant_id=merchant_id)


@router.get("/merchants/{merchant_id}/check", summary="What each channel needs that is missing",
            responses=error_responses(E.MERCHANT_NOT_FOUND))
async def check(merchant_id: str, db: Db, ports: Ports, _: Reader) -> CheckOut:
    missing = await service.check_fields(db, merchant_id=merchant_id, required={
        name.value: port.required_fields for name, port in ports.items()})
    return CheckOut(merchant_id=merchant_id, missing=missing)


@router.put("/merchants/{merchant_id}/supplement", summary="Set the channels' extra fields",
            responses=error_responses(E.MERCHANT_NOT_FOUND))
async def supplement(merchant_id: str, body: SupplementBody, db: Db,
                     actor: Reviewer) -> SupplementView:
    return await service.set_supplement(db, merchant_id=merchant_id, actor=actor,
                                        values=body.model_dump(exclude_unset=True))


@router.post("/merchants/{merchant_id}/channels/{channel}/register",
             summary="Register the merchant at a channel (pre-submission check first)",
             responses=error_responses(E.MERCHANT_NOT_FOUND, E.MERCHANT_NOT_ACTIVE,
                                       E.ONBOARDING_FIELDS_MISSING, E.ONBOARDING_NOT_SUPPORTED))
async def register(merchant_id: str, channel: str, db: Db, ports: Ports,
                   actor: Reviewer) -> list[RegistrationView]:
    port = _port(ports, channel)
    return await service.register(db, merchant_id=merchant_id, channel=port.name.value,
                                  required=port.required_fields, actor=actor)


@router.get("/registrations/{registration_id}", summary="One registration",
            responses=error_responses(E.REGISTRATION_NOT_FOUND))
async def registration(registration_id: str, db: Db, _: Reader) -> RegistrationView:
    return await service.get_registration(db, registration_id=registration_id)


@router.post("/registrations/{registration_id}/resubmit",
             summary="Resubmit a rejected registration as a new version",
             responses=error_responses(E.REGISTRATION_NOT_FOUND, E.REGISTRATION_STATE_INVALID,
                                       E.MERCHANT_NOT_ACTIVE))
async def resubmit(registration_id: str, db: Db, actor: Reviewer) -> RegistrationView:
    return await service.resubmit(db, registration_id=registration_id, actor=actor)


@router.post("/registrations/{registration_id}/suspend",
             summary="Stop the merchant's payments on this channel",
             responses=error_responses(E.REGISTRATION_NOT_FOUND, E.REGISTRATION_STATE_INVALID))
async def suspend(registration_id: str, body: ReasonBody, db: Db, actor: Risk
                  ) -> RegistrationView:
    return await service.suspend(db, registration_id=registration_id, actor=actor,
                                 reason=body.reason)


@router.post("/registrations/{registration_id}/resume",
             summary="Resume a suspended registration",
             responses=error_responses(E.REGISTRATION_NOT_FOUND, E.REGISTRATION_STATE_INVALID))
async def resume(registration_id: str, body: ReasonBody, db: Db, actor: Risk
                 ) -> RegistrationView:
    return await service.suspend(db, registration_id=registration_id, actor=actor,
                                 reason=body.reason, resume=True)


@router.post("/poll", summary="Send and ask about every due registration now")
async def poll(db: Db, settings: Conf, ports: Ports, _: Admin) -> PollOut:
    return PollOut(processed=await jobs.run_due(db, settings, ports, force=True))


class MerchantRegistrationOut(BaseModel):
    channel: str
    state: str
    sub_merchant_id: str | None
    reason: str | None
    action_url: str | None
    missing: list[str] | None


class MerchantOnboardingOut(BaseModel):
    data: list[MerchantRegistrationOut]


@merchant_router.get("/onboarding", summary="My registrations at the channels",
                     response_model=MerchantOnboardingOut, responses=error_responses(
                         E.SIGNATURE_MISSING, E.SIGNATURE_INVALID, E.TIMESTAMP_EXPIRED,
                         E.NONCE_REPLAYED, E.APP_NOT_FOUND, E.RATE_LIMITED))
async def my_onboarding(request: Request, db: Db, settings: Conf) -> MerchantOnboardingOut:
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    path = raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
    cred = await authenticate(db, settings, method=request.method, path=path,
                              headers={k.lower(): v for k, v in request.headers.items()},
                              body=await request.body())
    await admit_app(request, cred.app_id)
    rows = await service.list_registrations(db, merchant_id=cred.merchant_id, current_only=True)
    return MerchantOnboardingOut(data=[MerchantRegistrationOut(
        channel=r.channel, state=r.state.value, sub_merchant_id=r.sub_merchant_id,
        reason=r.reason, action_url=r.action_url, missing=r.missing) for r in rows])
