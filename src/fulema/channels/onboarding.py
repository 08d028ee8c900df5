"""The one Protocol every channel's sub-merchant onboarding (进件 / 报备) implements.

A bank runs its channels as a service provider (服务商 / 收单机构): each merchant it acquires is
registered at each channel under its own identity and gets a sub-merchant id there (WeChat's
`sub_mchid`, Alipay's `smid`, UnionPay's sub `merId`). The onboarding context (fulema.onboarding)
speaks only these types; each channel package's `onboarding` module translates them to the
channel's wire form and maps the channel's review states onto `ReviewStatus` exhaustively in one
table. Same rule as for payments: a transport failure or an answer that cannot be verified is
`ChannelUnavailable` (ask again later), never a rejection; only the channel saying so rejects.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import httpx

from fulema.core.config import Settings
from fulema.core.vocab import ChannelName


class ReviewStatus(StrEnum):
    """What a channel says of an application, in our words."""

    REVIEWING = "REVIEWING"  # received, under review (审核中)
    NEEDS_ACTION = "NEEDS_ACTION"  # the merchant must act: verify the account, sign (待验证/待签约)
    ACTIVE = "ACTIVE"  # registered: the sub-merchant id takes payments (已完成)
    REJECTED = "REJECTED"  # refused with a reason (已驳回)
    UNKNOWN = "UNKNOWN"  # no trustworthy answer, or a state we do not know: ask again


@dataclass(frozen=True)
class MerchantProfile:
    """What the channels are told about a merchant. Every field a channel may require is here,
    `None` when the merchant has not given it: `missing()` lists what a channel lacks before
    anything is sent. Holds personal data (legal person, contact, account): never logged."""

    name: str | None = None
    short_name: str | None = None
    licence_no: str | None = None
    legal_person: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    service_phone: str | None = None
    mcc: str | None = None
    settlement_account: str | None = None
    settlement_account_name: str | None = None
    settlement_bank: str | None = None
    store_name: str | None = None
    store_address: str | None = None
    address_code: str | None = None  # the 6-digit administrative division code (行政区划代码)

    def missing(self, required: frozenset[str]) -> list[str]:
        """The required fields this profile lacks, in the profile's own order."""
        return [f.name for f in fields(self) if f.name in required and not getattr(self, f.name)]

    def as_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Application:
    """One application: `application_no` is ours (WeChat's business_code, Alipay's
    external_id...), unique per merchant x channel x version, so sending it twice (after a
    timeout) is one application at the channel."""

    application_no: str
    merchant_id: str
    profile: MerchantProfile


@dataclass(frozen=True)
class ReviewResult:
    status: ReviewStatus
    channel_ref: str | None = None  # the channel's application id (applyment_id, order id)
    sub_merchant_id: str | None = None  # sub_mchid / smid / sub merId, once there is one
    reason: str | None = None  # the channel's rejection reason or what the merchant must do
    action_url: str | None = None  # where the merchant verifies or signs, when the channel says
    raw: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class OnboardingPort(Protocol):
    name: ChannelName

    @property
    def required_fields(self) -> frozenset[str]:
        """The `MerchantProfile` fields this channel needs: checked before anything is sent."""
        ...

    async def submit(self, app: Application) -> ReviewResult:
        """Send the application (idempotent by `application_no`). ChannelError when the channel
        refuses it outright (bad field), ChannelUnavailable when the outcome is unknown."""
        ...

    async def query(self, app: Application, channel_ref: str | None) -> ReviewResult:
        """The application's review state at the channel."""
        ...


def build_onboarding(settings: Settings, http: httpx.AsyncClient) -> dict[ChannelName, OnboardingPort]:
    """The onboarding port of every enabled channel whose package has an `onboarding` module
    (exposing `build_onboarding(settings, http)`); a channel without one cannot register
    sub-merchants here (ONBOARDING_NOT_SUPPORTED)."""
    ports: dict[ChannelName, OnboardingPort] = {}
    for name in settings.enabled_channels:
        cname = ChannelName(name)
        module_name = f"fulema.channels.{cname.value}.onboarding"
        if importlib.util.find_spec(module_name) is None:
            continue
        ports[cname] = importlib.import_module(module_name).build_onboarding(settings, http)
    return ports
