"""The merchant lifecycle and field rules, with no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulema.core.errors import ErrorCode, FulemaError
from fulema.merchants import domain
from fulema.merchants.domain import (
    TRANSITIONS,
    MerchantAction,
    MerchantStatus,
    TerminalKind,
    next_status,
)

S, A = MerchantStatus, MerchantAction

# The table as the bank wrote it, restated here so a change to domain.py must change a test.
EXPECTED = {
    (S.APPLIED, A.APPROVE): S.APPROVED,
    (S.APPLIED, A.REJECT): S.REJECTED,
    (S.REJECTED, A.RESUBMIT): S.APPLIED,
    (S.APPROVED, A.ACTIVATE): S.ACTIVE,
    (S.ACTIVE, A.FREEZE): S.FROZEN,
    (S.FROZEN, A.UNFREEZE): S.ACTIVE,
    (S.APPLIED, A.CLOSE): S.CLOSED,
    (S.APPROVED, A.CLOSE): S.CLOSED,
    (S.REJECTED, A.CLOSE): S.CLOSED,
    (S.ACTIVE, A.CLOSE): S.CLOSED,
    (S.FROZEN, A.CLOSE): S.CLOSED,
}
ILLEGAL = [(s, a) for s in S for a in A if (s, a) not in EXPECTED]


def test_the_table_is_exactly_the_banks() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("state", "action"), list(EXPECTED))
def test_every_legal_transition(state: MerchantStatus, action: MerchantAction) -> None:
    assert next_status(state, action) is EXPECTED[(state, action)]


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_every_illegal_transition_is_refused_naming_state_and_action(
        state: MerchantStatus, action: MerchantAction) -> None:
    with pytest.raises(FulemaError) as err:
        next_status(state, action)
    assert err.value.code is ErrorCode.ILLEGAL_STATE_TRANSITION
    assert err.value.http_status == 409
    assert state.value in err.value.message
    assert action.value in err.value.message


def test_closed_refuses_everything() -> None:
    assert all((S.CLOSED, a) in ILLEGAL for a in A)


@given(st.sampled_from(list(S)), st.lists(st.sampled_from(list(A)), max_size=40))
def test_no_sequence_of_actions_leaves_the_table(start: MerchantStatus,
                                                 actions: list[MerchantAction]) -> None:
    state, closed = start, start is S.CLOSED
    for action in actions:
        if (state, action) not in EXPECTED:
            with pytest.raises(FulemaError, match="cannot") as err:
                next_status(state, action)
            assert err.value.code is ErrorCode.ILLEGAL_STATE_TRANSITION
            continue
        moved = next_status(state, action)
        assert moved is EXPECTED[(state, action)]  # only the moves the table allows
        state = moved
        closed = closed or state is S.CLOSED
    assert state in set(S)
    assert (state is S.CLOSED) == closed  # CLOSED is terminal: once reached, never left


@pytest.mark.parametrize("action", [A.REJECT, A.FREEZE])
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_reject_and_freeze_need_a_reason(action: MerchantAction, reason: str | None) -> None:
    with pytest.raises(FulemaError) as err:
        domain.check_reason(action, reason)
    assert err.value.code is ErrorCode.VALIDATION_ERROR


def test_reasons_are_trimmed_optional_elsewhere_and_bounded() -> None:
    assert domain.check_reason(A.FREEZE, "  chargebacks ") == "chargebacks"
    assert domain.check_reason(A.UNFREEZE, None) is None
    assert domain.check_reason(A.CLOSE, " ") is None
    with pytest.raises(FulemaError):
        domain.check_reason(A.CLOSE, "x" * 257)


@pytest.mark.parametrize(("status", "code"), [
    (S.APPLIED, ErrorCode.MERCHANT_NOT_ACTIVE), (S.APPROVED, ErrorCode.MERCHANT_NOT_ACTIVE),
    (S.REJECTED, ErrorCode.MERCHANT_NOT_ACTIVE), (S.FROZEN, ErrorCode.MERCHANT_FROZEN),
    (S.CLOSED, ErrorCode.MERCHANT_CLOSED), (S.ACTIVE, None)])
def test_only_active_merchants_take_payments(status: MerchantStatus, code: ErrorCode | None) -> None:
    assert domain.payment_refusal(status) is code


# --- 统一社会信用代码 -------------------------------------------------------------------------

# Published codes of well-known companies (their check characters were not computed by us).
REAL_CODES = ["91350100M000100Y43", "91110000802100433B", "91310000717866186P",
              "914403001922038216"]


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_licence_numbers_pass(code: str) -> None:
    assert domain.normalise_licence(code) == code


def test_licence_is_trimmed_and_upper_cased() -> None:
    assert domain.normalise_licence(" 91110000802100433b ") == "91110000802100433B"


@pytest.mark.parametrize("code", [
    "91110000802100433C",  # wrong check character
    "91110000802100433",  # 17 characters
    "91110000802100433BB",  # 19
    "9111000080210043IB",  # I is not in the alphabet
    "91110000802100O33B",  # nor O
    "91A10000802100433B",  # division code must be digits
    "",
])
def test_bad_licence_numbers_are_refused(code: str) -> None:
    with pytest.raises(FulemaError) as err:
        domain.normalise_licence(code)
    assert err.value.code is ErrorCode.VALIDATION_ERROR


@given(st.text(alphabet=domain.USCC_ALPHABET, min_size=2, max_size=2),
       st.text(alphabet="0123456789", min_size=6, max_size=6),
       st.text(alphabet=domain.USCC_ALPHABET, min_size=9, max_size=9),
       st.sampled_from(domain.USCC_ALPHABET))
def test_only_the_computed_check_character_is_accepted(head: str, division: str, org: str,
                                                         other: str) -> None:
    first17 = head + division + org
    good = first17 + domain.uscc_check_char(first17)
    assert domain.normalise_licence(good) == good
    if other != good[-1]:
        with pytest.raises(FulemaError):
            domain.normalise_licence(first17 + other)


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("contact_phone", "13912345678", True), ("contact_phone", "19912345678", True),
    ("contact_phone", "12912345678", False), ("contact_phone", "1391234567", False),
    ("contact_phone", "+8613912345678", False), ("contact_phone", "0571-8888888", False),
    ("mcc", "5812", True), ("mcc", "581", False), ("mcc", "58a2", False),
    ("settlement_account", "6230910012345678901", True), ("settlement_account", "1234567", False),
    ("settlement_account", "6230-9100-1234", False),
])
def test_field_formats(field: str, value: str, ok: bool) -> None:
    if ok:
        domain.check_formats(**{field: value})
    else:
        with pytest.raises(FulemaError):
            domain.check_formats(**{field: value})


def test_fee_defaults_and_bounds() -> None:
    assert domain.DEFAULT_FEE_BPS == {"wechat": 38, "alipay": 38, "unionpay": 38, "ecny": 38,
                                      "bankpay": 0}
    domain.check_fee("wechat", 0)
    domain.check_fee("bankpay", 1000)
    for channel, bps in [("wechat", -1), ("wechat", 1001), ("paypal", 38), ("alipay", True)]:
        with pytest.raises(FulemaError):
            domain.check_fee(channel, bps)


def test_speakers_and_only_speakers_have_a_speaker_id() -> None:
    domain.check_terminal(TerminalKind.SPEAKER, "spk_1")
    domain.check_terminal(TerminalKind.POS, None)
    with pytest.raises(FulemaError):
        domain.check_terminal(TerminalKind.SPEAKER, None)
    with pytest.raises(FulemaError):
        domain.check_terminal(TerminalKind.CASHIER, "spk_1")
