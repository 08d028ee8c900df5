"""Which channel a payer code belongs to, and which app is scanning a static QR.

The tables live in settings (`payer_code_rules`, `ua_markers`) so a bank can add a channel's
new code range or its own app's User-Agent marker without a code change.
"""

from __future__ import annotations

from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.text import is_ascii_digits
from fulema.core.vocab import ChannelName


def detect_payer_code(code: str, settings: Settings) -> ChannelName:
    code = code.strip()
    if not is_ascii_digits(code):
        raise FulemaError(ErrorCode.UNRECOGNISED_PAYER_CODE, "a payer code is digits only")
    for channel, rule in settings.payer_code_rules.items():
        prefixes = [str(p) for p in rule.get("prefixes", [])]
        lengths = [int(n) for n in rule.get("lengths", [])]
        if len(code) in lengths and any(code.startswith(p) for p in prefixes):
            return ChannelName(channel)
    raise FulemaError(ErrorCode.UNRECOGNISED_PAYER_CODE,
                      f"no channel issues {len(code)}-digit codes starting {code[:2]}")


def detect_app(user_agent: str, settings: Settings) -> ChannelName | None:
    """The channel of the app that opened the cashier, or None for an unsupported browser."""
    for channel, markers in settings.ua_markers.items():
        if any(marker and marker in user_agent for marker in markers):
            return ChannelName(channel)
    return None
