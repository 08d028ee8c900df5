"""Merchant rules with no I/O: the lifecycle state machine, field formats and fee defaults.

The bank's operators run the lifecycle by hand (商户进件 apply, 审核 approve/reject, 激活
activate, 冻结/解冻 freeze/unfreeze, 注销 close); this module is the one place that says which
action is allowed in which state, so the service, the API and the property test agree.
"""

from __future__ import annotations

import re
from enum import StrEnum

from fulema.core.errors import ErrorCode, FulemaError


class MerchantStatus(StrEnum):
    APPLIED = "APPLIED"  # 已进件, waiting for review
    APPROVED = "APPROVED"  # 审核通过, not yet taking payments
    REJECTED = "REJECTED"  # 审核驳回, may be corrected and resubmitted
    ACTIVE = "ACTIVE"  # 已激活, takes payments
    FROZEN = "FROZEN"  # 冻结 by the bank (risk, disputes); payments refused
    CLOSED = "CLOSED"  # 注销; terminal


class MerchantAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    RESUBMIT = "resubmit"
    ACTIVATE = "activate"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    CLOSE = "close"


S, A = MerchantStatus, MerchantAction

# (state, action) -> next state. Anything not here is refused.
TRANSITIONS: dict[tuple[MerchantStatus, MerchantAction], MerchantStatus] = {
    (S.APPLIED, A.APPROVE): S.APPROVED,
    (S.APPLIED, A.REJECT): S.REJECTED,
    (S.REJECTED, A.RESUBMIT): S.APPLIED,
    (S.APPROVED, A.ACTIVATE): S.ACTIVE,
    (S.ACTIVE, A.FREEZE): S.FROZEN,
    (S.FROZEN, A.UNFREEZE): S.ACTIVE,
    **{(state, A.CLOSE): S.CLOSED for state in S if state is not S.CLOSED},
}

# Actions the bank must justify: the reason is shown to the merchant and kept in the audit log.
REASON_REQUIRED = frozenset({A.REJECT, A.FREEZE})
MAX_REASON = 256


def next_status(current: MerchantStatus, action: MerchantAction) -> MerchantStatus:
    """The state `action` leads to from `current`, or ILLEGAL_STATE_TRANSITION."""
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION,
                          f"cannot {action.value} a merchant that is {current.value}",
                          status=current.value, action=action.value) from None


def check_reason(action: MerchantAction, reason: str | None) -> str | None:
    """Normalise the reason; refuse a blank one where the action needs it."""
    text = (reason or "").strip() or None
    if action in REASON_REQUIRED and text is None:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"reason: required to {action.value}")
    if text is not None and len(text) > MAX_REASON:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"reason: at most {MAX_REASON} characters")
    return text


def payment_refusal(status: MerchantStatus) -> ErrorCode | None:
    """Why a merchant in `status` cannot take a payment (None: it can). Only ACTIVE pays."""
    if status is S.ACTIVE:
        return None
    if status is S.FROZEN:
        return ErrorCode.MERCHANT_FROZEN
    if status is S.CLOSED:
        return ErrorCode.MERCHANT_CLOSED
    return ErrorCode.MERCHANT_NOT_ACTIVE


def check_open(status: MerchantStatus, what: str) -> None:
    """Stores, terminals, apps, plates and fees can be set up in any state but CLOSED."""
    if status is S.CLOSED:
        raise FulemaError(ErrorCode.MERCHANT_CLOSED, f"the merchant is closed: cannot {what}")


# --- field formats --------------------------------------------------------------------------

# 统一社会信用代码 (GB 32100-2015): 18 characters from this 31-character alphabet (no I, O, Z,
# S, V); characters 3-8 are the administrative division code; the last is a mod-31 check.
# Hand-written because no maintained PyPI package validates it; the algorithm is a dozen lines
# and the tests check it against published codes.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
LICENCE_PATTERN = r"^[0-9A-Za-z]{18}$"
PHONE_PATTERN = r"^1[3-9][0-9]{9}$"  # mainland mobile: 11 digits, 13x-19x
MCC_PATTERN = r"^[0-9]{4}$"
ACCOUNT_PATTERN = r"^[0-9]{8,32}$"  # settlement account number (bank card or corporate account)


def uscc_check_char(first17: str) -> str:
    """The check character for the first 17 characters of a 统一社会信用代码."""
    total = sum(USCC_ALPHABET.index(ch) * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def normalise_licence(licence_no: str) -> str:
    """Upper-case and validate a business licence number, or VALIDATION_ERROR."""
    code = licence_no.strip().upper()
    if len(code) != 18 or any(ch not in USCC_ALPHABET for ch in code):
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "licence_no: 18 characters of 0-9 and A-Y without I, O, S, V, Z")
    if not code[2:8].isdigit():
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "licence_no: characters 3-8 must be the division code (digits)")
    if uscc_check_char(code[:17]) != code[17]:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "licence_no: check character does not match")
    return code


def check_formats(*, contact_phone: str | None = None, mcc: str | None = None,
                  settlement_account: str | None = None) -> None:
    """The same checks the API schema makes, for callers that do not come through HTTP."""
    for field, value, pattern in (("contact_phone", contact_phone, PHONE_PATTERN),
                                  ("mcc", mcc, MCC_PATTERN),
                                  ("settlement_account", settlement_account, ACCOUNT_PATTERN)):
        if value is not None and not re.fullmatch(pattern, value):
            raise FulemaError(ErrorCode.VALIDATION_ERROR, f"{field}: does not match {pattern}")


# --- fees -----------------------------------------------------------------------------------

FEE_CHANNELS = ("wechat", "alipay", "unionpay", "ecny", "bankpay")
DEFAULT_FEE_BPS = {"wechat": 38, "alipay": 38, "unionpay": 38, "ecny": 38, "bankpay": 0}
MAX_FEE_BPS = 1000  # 10%: anything above is a typo, not a price


def check_fee(channel: str, bps: int) -> None:
    if channel not in DEFAULT_FEE_BPS:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          f"channel: one of {', '.join(FEE_CHANNELS)}")
    if isinstance(bps, bool) or not isinstance(bps, int) or not 0 <= bps <= MAX_FEE_BPS:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"bps: an integer 0..{MAX_FEE_BPS}")


# --- terminals and plates -------------------------------------------------------------------


class TerminalKind(StrEnum):
    CASHIER = "CASHIER"  # 收银台 (the merchant's till software)
    SPEAKER = "SPEAKER"  # 云音箱 (announces payments)
    POS = "POS"  # 智能POS


def check_terminal(kind: TerminalKind, speaker_id: str | None) -> None:
    """A cloud speaker is addressed by its speaker_id; other terminals have none."""
    if kind is TerminalKind.SPEAKER and not speaker_id:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "speaker_id: required for a SPEAKER")
    if kind is not TerminalKind.SPEAKER and speaker_id:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "speaker_id: only a SPEAKER has one")


class PlateStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


# Plate codes: 10 characters from 29 unambiguous upper-case letters and digits (no 0/O, 1/I/L,
# U/V to confuse when read out over the phone): about 48 bits from `secrets`, so codes cannot be
# walked. The demo plate "DEMO000001" is fixed on purpose and is the only predictable one.
PLATE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
PLATE_CODE_LENGTH = 10
PLATE_CODE_PATTERN = r"^[0-9A-Za-z]{4,32}$"
