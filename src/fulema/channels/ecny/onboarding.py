"""The merchant's registration with the e-CNY operating institution (our assumed interface,
`channels/json_onboarding.py`), over the institution's signed API the payments use."""

from __future__ import annotations

import httpx

from fulema.channels.ecny.adapter import EcnyChannel
from fulema.channels.json_onboarding import JsonOnboarding
from fulema.core.config import Settings
from fulema.core.vocab import ChannelName

REQUIRED = frozenset({"name", "licence_no", "mcc", "legal_person", "contact_name",
                      "contact_phone", "settlement_account", "settlement_account_name"})


def build_onboarding(settings: Settings, http: httpx.AsyncClient) -> JsonOnboarding:
    channel = EcnyChannel(settings, http)
    return JsonOnboarding(ChannelName.ECNY, channel._call, "/v1/merchants",
                          REQUIRED, {"merchant_id": settings.ecny.merchant_id})
