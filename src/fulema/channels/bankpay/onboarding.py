"""The bank's own channel: a merchant is registered once the bank has verified its settlement
account (our assumed interface, `channels/json_onboarding.py`), over the channel's signed API."""

from __future__ import annotations

import httpx

from fulema.channels.bankpay.adapter import BankpayChannel
from fulema.channels.json_onboarding import JsonOnboarding
from fulema.core.config import Settings
from fulema.core.vocab import ChannelName

REQUIRED = frozenset({"name", "licence_no", "mcc", "settlement_account",
                      "settlement_account_name"})


def build_onboarding(settings: Settings, http: httpx.AsyncClient) -> JsonOnboarding:
    bank = settings.bankpay
    channel = BankpayChannel(settings, http)
    return JsonOnboarding(ChannelName.BANKPAY, channel._call, "/api/merchants",
                          REQUIRED, {"merchant_no": bank.merchant_no,
                                     "institution_id": bank.institution_id})
