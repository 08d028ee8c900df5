"""One error type with stable codes.

Merchants' systems branch on `code`, so codes never change meaning once published. Each code
carries its HTTP status and a one-line description; `docs/errors.md` is generated from this
table (`fulema docs-errors`), and a test checks the two agree, so the documentation cannot
drift from the code.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # (value, http_status, description) - see _META below
    # request shape
    MALFORMED_JSON = "MALFORMED_JSON"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    HTTP_ERROR = "HTTP_ERROR"
    UNAUTHORIZED = "UNAUTHORIZED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # gateway: signing and replay
    SIGNATURE_MISSING = "SIGNATURE_MISSING"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    TIMESTAMP_EXPIRED = "TIMESTAMP_EXPIRED"
    NONCE_REPLAYED = "NONCE_REPLAYED"
    APP_NOT_FOUND = "APP_NOT_FOUND"
    # merchants
    MERCHANT_NOT_FOUND = "MERCHANT_NOT_FOUND"
    MERCHANT_NOT_ACTIVE = "MERCHANT_NOT_ACTIVE"
    MERCHANT_FROZEN = "MERCHANT_FROZEN"
    MERCHANT_CLOSED = "MERCHANT_CLOSED"
    DUPLICATE_LICENCE = "DUPLICATE_LICENCE"
    STORE_NOT_FOUND = "STORE_NOT_FOUND"
    TERMINAL_NOT_FOUND = "TERMINAL_NOT_FOUND"
    DUPLICATE_TERMINAL = "DUPLICATE_TERMINAL"
    PLATE_NOT_FOUND = "PLATE_NOT_FOUND"
    ILLEGAL_STATE_TRANSITION = "ILLEGAL_STATE_TRANSITION"
    # payments
    INVALID_AMOUNT = "INVALID_AMOUNT"
    AMOUNT_OUT_OF_RANGE = "AMOUNT_OUT_OF_RANGE"
    UNKNOWN_WAY_CODE = "UNKNOWN_WAY_CODE"
    UNRECOGNISED_PAYER_CODE = "UNRECOGNISED_PAYER_CODE"
    PAYER_ID_REQUIRED = "PAYER_ID_REQUIRED"
    DUPLICATE_OUT_TRADE_NO = "DUPLICATE_OUT_TRADE_NO"
    DUPLICATE_OUT_REFUND_NO = "DUPLICATE_OUT_REFUND_NO"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    REFUND_NOT_FOUND = "REFUND_NOT_FOUND"
    ORDER_NOT_PAID = "ORDER_NOT_PAID"
    ORDER_ALREADY_FINAL = "ORDER_ALREADY_FINAL"
    REFUND_EXCEEDS_REFUNDABLE = "REFUND_EXCEEDS_REFUNDABLE"
    # channels
    CHANNEL_NOT_ENABLED = "CHANNEL_NOT_ENABLED"
    CHANNEL_UNAVAILABLE = "CHANNEL_UNAVAILABLE"
    CHANNEL_ERROR = "CHANNEL_ERROR"
    CALLBACK_INVALID = "CALLBACK_INVALID"
    # events
    EVENT_CONSUMER_NOT_FOUND = "EVENT_CONSUMER_NOT_FOUND"
    EVENT_NOT_FOUND = "EVENT_NOT_FOUND"
    EVENT_REPLAY_INVALID = "EVENT_REPLAY_INVALID"
    EVENT_CONSUMER_NOT_FAILING = "EVENT_CONSUMER_NOT_FAILING"
    # risk
    RISK_REJECTED = "RISK_REJECTED"
    # messaging
    MESSAGE_NOT_FOUND = "MESSAGE_NOT_FOUND"
    # billing: bills and charity
    BILLER_NOT_FOUND = "BILLER_NOT_FOUND"
    BILL_NOT_FOUND = "BILL_NOT_FOUND"
    BILL_ALREADY_PAID = "BILL_ALREADY_PAID"
    BILL_AMOUNT_MISMATCH = "BILL_AMOUNT_MISMATCH"
    BILL_PAYMENT_NOT_FOUND = "BILL_PAYMENT_NOT_FOUND"
    CHARITY_PROJECT_NOT_FOUND = "CHARITY_PROJECT_NOT_FOUND"
    CHARITY_PROJECT_CLOSED = "CHARITY_PROJECT_CLOSED"
    DONATION_NOT_FOUND = "DONATION_NOT_FOUND"

    @property
    def http_status(self) -> int:
        return _META[self][0]

    @property
    def description(self) -> str:
        return _META[self][1]


_META: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.MALFORMED_JSON: (400, "The body is not valid JSON (or not a JSON object)."),
    ErrorCode.VALIDATION_ERROR: (400, "A field is missing, of the wrong type or out of range."),
    ErrorCode.BODY_TOO_LARGE: (413, "The body is larger than FULEMA_MAX_BODY_BYTES."),
    ErrorCode.NOT_FOUND: (404, "No such endpoint or resource."),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "The endpoint exists, but not for this HTTP method."),
    ErrorCode.HTTP_ERROR: (400, "Any other refusal at the HTTP layer; the answer keeps the status "
                                "the web framework chose (400 unless it chose another)."),
    ErrorCode.UNAUTHORIZED: (401, "Operator endpoints need a valid bearer token."),
    ErrorCode.INTERNAL_ERROR: (500, "Unexpected failure; nothing was committed. Retry safely."),
    ErrorCode.SIGNATURE_MISSING: (401, "A required signing header is absent."),
    ErrorCode.SIGNATURE_INVALID: (401, "The signature does not match the canonical string."),
    ErrorCode.TIMESTAMP_EXPIRED: (401, "The timestamp is more than 5 minutes from server time."),
    ErrorCode.NONCE_REPLAYED: (401, "This nonce was already used by this app."),
    ErrorCode.APP_NOT_FOUND: (401, "No API credential with this app_id."),
    ErrorCode.MERCHANT_NOT_FOUND: (404, "No such merchant."),
    ErrorCode.MERCHANT_NOT_ACTIVE: (403, "The merchant is not active yet and cannot take payments."),
    ErrorCode.MERCHANT_FROZEN: (403, "The merchant is frozen by the bank; payments are refused."),
    ErrorCode.MERCHANT_CLOSED: (403, "The merchant is closed."),
    ErrorCode.DUPLICATE_LICENCE: (409, "A merchant with this business licence number exists."),
    ErrorCode.STORE_NOT_FOUND: (404, "No such store for this merchant."),
    ErrorCode.TERMINAL_NOT_FOUND: (404, "No such terminal for this store."),
    ErrorCode.DUPLICATE_TERMINAL: (409, "This device (serial or speaker id) is bound to an active terminal."),
    ErrorCode.PLATE_NOT_FOUND: (404, "No such QR plate, or it is disabled."),
    ErrorCode.ILLEGAL_STATE_TRANSITION: (409, "The object's state does not allow this action."),
    ErrorCode.INVALID_AMOUNT: (400, "Amounts are positive integers in fen."),
    ErrorCode.AMOUNT_OUT_OF_RANGE: (400, "The amount is above the per-order limit."),
    ErrorCode.UNKNOWN_WAY_CODE: (400, "way_code is not one of the documented way codes."),
    ErrorCode.UNRECOGNISED_PAYER_CODE: (400, "The payer code is not digits, matches no channel's "
                                             "code rules (FULEMA_PAYER_CODE_RULES), or belongs "
                                             "to another channel than the one named. A code of "
                                             "a channel that is not enabled is "
                                             "CHANNEL_NOT_ENABLED."),
    ErrorCode.PAYER_ID_REQUIRED: (400, "JSAPI payments need payer_id (openid / user id)."),
    ErrorCode.DUPLICATE_OUT_TRADE_NO: (409, "out_trade_no was used with other parameters."),
    ErrorCode.DUPLICATE_OUT_REFUND_NO: (409, "out_refund_no was used with other parameters."),
    ErrorCode.ORDER_NOT_FOUND: (404, "No such order for this merchant."),
    ErrorCode.REFUND_NOT_FOUND: (404, "No such refund for this merchant."),
    ErrorCode.ORDER_NOT_PAID: (409, "Only a paid order can be refunded."),
    ErrorCode.ORDER_ALREADY_FINAL: (409, "The order is paid, failed or closed already."),
    ErrorCode.REFUND_EXCEEDS_REFUNDABLE: (409, "The refund is above what is left to refund."),
    ErrorCode.CHANNEL_NOT_ENABLED: (400, "This channel is not enabled for the platform."),
    ErrorCode.CHANNEL_UNAVAILABLE: (503, "The channel is down (circuit open); retry later."),
    ErrorCode.CHANNEL_ERROR: (502, "The channel refused or failed the request."),
    ErrorCode.CALLBACK_INVALID: (400, "A channel callback failed verification; ignored."),
    ErrorCode.EVENT_CONSUMER_NOT_FOUND: (404, "No event consumer of this name is declared by "
                                              "the platform."),
    ErrorCode.EVENT_NOT_FOUND: (404, "No sequenced event with this id (it may not be numbered "
                                     "yet: try again in a moment)."),
    ErrorCode.EVENT_REPLAY_INVALID: (400, "Replay needs event_id, or from_seq <= to_seq (both > 0) "
                                          "spanning at most 1000 events."),
    ErrorCode.EVENT_CONSUMER_NOT_FAILING: (409, "The consumer is not stopped at a failing event, "
                                                "so there is nothing to skip."),
    ErrorCode.RISK_REJECTED: (403, "The risk engine refused this transaction."),
    ErrorCode.MESSAGE_NOT_FOUND: (404, "No speaker message with this id."),
    ErrorCode.BILLER_NOT_FOUND: (404, "No active biller with this code."),
    ErrorCode.BILL_NOT_FOUND: (404, "The biller knows no unpaid bill for this account (or no "
                                    "such bill id)."),
    ErrorCode.BILL_ALREADY_PAID: (409, "This bill is paid, or a payment for it is under way."),
    ErrorCode.BILL_AMOUNT_MISMATCH: (400, "The amount differs from the bill's: a bill is paid "
                                          "in full, never in part or above."),
    ErrorCode.BILL_PAYMENT_NOT_FOUND: (404, "No bill payment with this id."),
    ErrorCode.CHARITY_PROJECT_NOT_FOUND: (404, "No charity project with this id."),
    ErrorCode.CHARITY_PROJECT_CLOSED: (409, "The charity project is outside its donation "
                                            "window or closed."),
    ErrorCode.DONATION_NOT_FOUND: (404, "No donation with this id."),
}


class FulemaError(Exception):
    """The only exception the API turns into a 4xx/5xx answer with a stable code."""

    def __init__(self, code: ErrorCode, message: str | None = None, **details: object) -> None:
        self.code = code
        self.message = message or code.description
        self.details = details
        super().__init__(f"{code}: {self.message}")

    @property
    def http_status(self) -> int:
        return self.code.http_status


def errors_markdown() -> str:
    """The error table for docs/errors.md."""
    lines = ["# Error codes", "", "Every error answers `{\"code\", \"message\", \"request_id\"}`.", "",
             "| code | HTTP | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{c.value}` | {c.http_status} | {c.description} |" for c in ErrorCode]
    return "\n".join(lines) + "\n"
