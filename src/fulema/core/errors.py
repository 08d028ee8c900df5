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
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    RATE_LIMITED = "RATE_LIMITED"
    OVERLOADED = "OVERLOADED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
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
    NOTIFY_URL_REFUSED = "NOTIFY_URL_REFUSED"
    WAY_NOT_SUPPORTED = "WAY_NOT_SUPPORTED"
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
    # operators, four eyes and the audit trail
    OPERATOR_FORBIDDEN = "OPERATOR_FORBIDDEN"
    OPERATOR_NOT_FOUND = "OPERATOR_NOT_FOUND"
    OPERATOR_EXISTS = "OPERATOR_EXISTS"
    OPERATOR_TOKEN_NOT_FOUND = "OPERATOR_TOKEN_NOT_FOUND"  # noqa: S105 - a code, not a token
    APPROVAL_NOT_FOUND = "APPROVAL_NOT_FOUND"
    APPROVAL_NOT_PENDING = "APPROVAL_NOT_PENDING"
    APPROVAL_OWN_REQUEST = "APPROVAL_OWN_REQUEST"
    # reconciliation
    STATEMENT_INVALID = "STATEMENT_INVALID"
    STATEMENT_ENCODING = "STATEMENT_ENCODING"
    STATEMENT_ALREADY_IMPORTED = "STATEMENT_ALREADY_IMPORTED"
    RECON_RUN_NOT_FOUND = "RECON_RUN_NOT_FOUND"
    DISCREPANCY_NOT_FOUND = "DISCREPANCY_NOT_FOUND"
    DISCREPANCY_ACTION_INVALID = "DISCREPANCY_ACTION_INVALID"
    # ledger and settlement
    SETTLEMENT_BATCH_NOT_FOUND = "SETTLEMENT_BATCH_NOT_FOUND"
    BILL_DATE_INVALID = "BILL_DATE_INVALID"
    # marketing and points
    QUOTE_INVALID = "QUOTE_INVALID"
    QUOTE_EXPIRED = "QUOTE_EXPIRED"
    QUOTE_MISMATCH = "QUOTE_MISMATCH"
    DISCOUNT_REQUEST_INVALID = "DISCOUNT_REQUEST_INVALID"
    CAMPAIGN_NOT_FOUND = "CAMPAIGN_NOT_FOUND"
    CAMPAIGN_NOT_ACTIVE = "CAMPAIGN_NOT_ACTIVE"
    CAMPAIGN_NOT_APPLICABLE = "CAMPAIGN_NOT_APPLICABLE"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    THRESHOLD_NOT_MET = "THRESHOLD_NOT_MET"
    DISCOUNTS_NOT_STACKABLE = "DISCOUNTS_NOT_STACKABLE"
    COUPON_TEMPLATE_NOT_FOUND = "COUPON_TEMPLATE_NOT_FOUND"
    COUPON_NOT_FOUND = "COUPON_NOT_FOUND"
    COUPON_NOT_OWNED = "COUPON_NOT_OWNED"
    COUPON_NOT_APPLICABLE = "COUPON_NOT_APPLICABLE"
    COUPON_EXPIRED = "COUPON_EXPIRED"
    COUPON_NOT_AVAILABLE = "COUPON_NOT_AVAILABLE"
    COUPON_LIMIT_REACHED = "COUPON_LIMIT_REACHED"
    COUPON_GRANT_RULE_INVALID = "COUPON_GRANT_RULE_INVALID"
    PAYER_REQUIRED_FOR_DISCOUNT = "PAYER_REQUIRED_FOR_DISCOUNT"
    INVALID_POINTS = "INVALID_POINTS"
    POINTS_INSUFFICIENT = "POINTS_INSUFFICIENT"
    POINTS_ACCOUNT_NOT_FOUND = "POINTS_ACCOUNT_NOT_FOUND"
    RISK_RULE_INVALID = "RISK_RULE_INVALID"
    RISK_RULE_NOT_FOUND = "RISK_RULE_NOT_FOUND"
    RISK_RULE_CONFLICT = "RISK_RULE_CONFLICT"
    RISK_CASE_NOT_FOUND = "RISK_CASE_NOT_FOUND"
    RISK_ALERT_NOT_FOUND = "RISK_ALERT_NOT_FOUND"
    # messaging
    MESSAGE_NOT_FOUND = "MESSAGE_NOT_FOUND"
    MESSAGE_DELIVERY_NOT_FOUND = "MESSAGE_DELIVERY_NOT_FOUND"
    NOTICE_NOT_FOUND = "NOTICE_NOT_FOUND"
    UNKNOWN_MESSAGE_EVENT = "UNKNOWN_MESSAGE_EVENT"
    UNKNOWN_MESSAGE_CHANNEL = "UNKNOWN_MESSAGE_CHANNEL"
    INVALID_PHONE = "INVALID_PHONE"
    MESSAGE_RECIPIENT_MISSING = "MESSAGE_RECIPIENT_MISSING"
    # billing: bills and charity
    BILLER_NOT_FOUND = "BILLER_NOT_FOUND"
    BILL_NOT_FOUND = "BILL_NOT_FOUND"
    BILL_ALREADY_PAID = "BILL_ALREADY_PAID"
    BILL_AMOUNT_MISMATCH = "BILL_AMOUNT_MISMATCH"
    BILL_PAYMENT_NOT_FOUND = "BILL_PAYMENT_NOT_FOUND"
    CHARITY_PROJECT_NOT_FOUND = "CHARITY_PROJECT_NOT_FOUND"
    CHARITY_PROJECT_CLOSED = "CHARITY_PROJECT_CLOSED"
    DONATION_NOT_FOUND = "DONATION_NOT_FOUND"
    # onboarding (sub-merchant registration at the channels)
    ONBOARDING_FIELDS_MISSING = "ONBOARDING_FIELDS_MISSING"
    REGISTRATION_NOT_FOUND = "REGISTRATION_NOT_FOUND"
    REGISTRATION_STATE_INVALID = "REGISTRATION_STATE_INVALID"
    ONBOARDING_NOT_SUPPORTED = "ONBOARDING_NOT_SUPPORTED"
    CHANNEL_NOT_REGISTERED = "CHANNEL_NOT_REGISTERED"
    SUB_MERCHANT_REFUSED = "SUB_MERCHANT_REFUSED"
    # merchant portal users (web/portal)
    MERCHANT_USER_EXISTS = "MERCHANT_USER_EXISTS"
    MERCHANT_USER_NOT_FOUND = "MERCHANT_USER_NOT_FOUND"
    LOGIN_FAILED = "LOGIN_FAILED"
    LOGIN_LOCKED = "LOGIN_LOCKED"
    PORTAL_FORBIDDEN = "PORTAL_FORBIDDEN"

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
    ErrorCode.RATE_LIMITED: (429, "Too many requests from this app, source or in total; nothing was "
                             "done. Retry after the Retry-After header's seconds."),
    ErrorCode.OVERLOADED: (503, "The server is shedding load to keep serving what it accepted; "
                           "nothing was done. Retry after Retry-After."),
    ErrorCode.UPSTREAM_UNAVAILABLE: (503, "The front reached no API process, or none answered in "
                                     "time; a request that reached one may have been carried "
                                     "out: send it again unchanged (creates and refunds are "
                                     "idempotent by your own number) or query it, after "
                                     "Retry-After."),
    ErrorCode.DATABASE_UNAVAILABLE: (503, "The database is unreachable or read-only (e.g. during "
                                     "a disaster-recovery switchover); nothing was committed. "
                                     "Retry the same request after Retry-After."),
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
    ErrorCode.NOTIFY_URL_REFUSED: (400, "notify_url is not an http(s) URL we send to: a scheme "
                                        "other than http(s), credentials, blanks or control "
                                        "characters, or a loopback, private, link-local, "
                                        "multicast or reserved address (docs/security.md)."),
    ErrorCode.WAY_NOT_SUPPORTED: (400, "The channel does not take this way_code (the table in "
                                       "docs/channels/README.md); nothing was recorded."),
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
    ErrorCode.OPERATOR_FORBIDDEN: (403, "The operator's token is valid, but none of its roles "
                                        "(reviewer, risk, finance, admin) may do this."),
    ErrorCode.OPERATOR_NOT_FOUND: (404, "No operator of this name."),
    ErrorCode.OPERATOR_EXISTS: (409, "An operator of this name exists (names are never reused)."),
    ErrorCode.OPERATOR_TOKEN_NOT_FOUND: (404, "No such API token for this operator."),
    ErrorCode.APPROVAL_NOT_FOUND: (404, "No such approval request."),
    ErrorCode.APPROVAL_NOT_PENDING: (409, "The approval request was decided already (approved, "
                                          "rejected or failed)."),
    ErrorCode.APPROVAL_OWN_REQUEST: (403, "Four eyes: the operator who asked for an action cannot "
                                          "approve or reject it."),
    ErrorCode.STATEMENT_INVALID: (422, "A channel statement is malformed (bad header, wrong "
                                       "column count or line length, bad amount, unknown "
                                       "record type); the message names the line and the "
                                       "reason. Nothing of the file was imported."),
    ErrorCode.STATEMENT_ENCODING: (422, "A channel statement is not in its format's encoding "
                                        "(UTF-8 for WeChat, e-CNY and the bank; GBK for Alipay "
                                        "and UnionPay), or not the archive the format expects; "
                                        "the message names the line. Nothing was imported."),
    ErrorCode.STATEMENT_ALREADY_IMPORTED: (409, "This very file (same SHA-256) was imported "
                                                "for this channel and day before; the message "
                                                "names that run."),
    ErrorCode.RECON_RUN_NOT_FOUND: (404, "No reconciliation run with this id."),
    ErrorCode.DISCREPANCY_NOT_FOUND: (404, "No reconciliation discrepancy with this id."),
    ErrorCode.DISCREPANCY_ACTION_INVALID: (409, "The discrepancy's state or kind does not allow "
                                                "this step (e.g. resolving a resolved one, or "
                                                "correcting an order that is not ours)."),
    ErrorCode.SETTLEMENT_BATCH_NOT_FOUND: (404, "No such settlement batch (for this merchant)."),
    ErrorCode.BILL_DATE_INVALID: (400, "date must be a past or current trade date as "
                                       "YYYY-MM-DD."),
    ErrorCode.QUOTE_INVALID: (400, "The quote is not one the platform issued (unreadable or "
                                   "altered); ask for a new quote."),
    ErrorCode.QUOTE_EXPIRED: (409, "The quote is older than FULEMA_MARKETING_QUOTE_SECONDS; ask "
                                   "for a new quote."),
    ErrorCode.QUOTE_MISMATCH: (400, "The quote was made for another merchant, amount, channel, "
                                    "payer or store than this order."),
    ErrorCode.DISCOUNT_REQUEST_INVALID: (400, "An order's discount request is not one we take: "
                                              "`discount` must be \"best\", is not combined "
                                              "with `quote`, and `discount_picks` needs it."),
    ErrorCode.CAMPAIGN_NOT_FOUND: (404, "No such campaign."),
    ErrorCode.CAMPAIGN_NOT_ACTIVE: (409, "The campaign is paused, ended, or outside its time "
                                         "window."),
    ErrorCode.CAMPAIGN_NOT_APPLICABLE: (409, "The campaign does not cover this merchant, store, "
                                             "channel or payer (e.g. new payers only)."),
    ErrorCode.BUDGET_EXHAUSTED: (409, "The campaign's total or daily budget cannot cover this "
                                      "discount; nothing was reserved."),
    ErrorCode.THRESHOLD_NOT_MET: (409, "The amount is below the discount's threshold."),
    ErrorCode.DISCOUNTS_NOT_STACKABLE: (409, "The chosen campaign and coupon may not be used "
                                             "together (one of them is exclusive)."),
    ErrorCode.COUPON_TEMPLATE_NOT_FOUND: (404, "No such coupon template, or it is not active."),
    ErrorCode.COUPON_NOT_FOUND: (404, "No such coupon."),
    ErrorCode.COUPON_NOT_OWNED: (409, "The coupon belongs to another payer."),
    ErrorCode.COUPON_NOT_APPLICABLE: (409, "The coupon is not valid at this merchant or on this "
                                           "channel."),
    ErrorCode.COUPON_EXPIRED: (409, "The coupon is outside its validity."),
    ErrorCode.COUPON_NOT_AVAILABLE: (409, "The coupon is locked by another order, used or "
                                          "revoked."),
    ErrorCode.COUPON_LIMIT_REACHED: (409, "The payer has claimed as many coupons of this template "
                                          "as allowed (per payer or per day), or none are left."),
    ErrorCode.COUPON_GRANT_RULE_INVALID: (400, "The coupon template's grant rule is not valid: "
                                               "an unknown event, a minimum amount below 1 fen "
                                               "or above the order limit, or merchants outside "
                                               "the template's scope."),
    ErrorCode.PAYER_REQUIRED_FOR_DISCOUNT: (400, "Coupons, points and new-payer campaigns need "
                                                 "the payer's id (payer_id)."),
    ErrorCode.INVALID_POINTS: (400, "Points must be a whole number, not negative."),
    ErrorCode.POINTS_INSUFFICIENT: (409, "More points asked than the payer's balance holds."),
    ErrorCode.POINTS_ACCOUNT_NOT_FOUND: (404, "No points account for this payer."),
    ErrorCode.RISK_REJECTED: (403, "The risk engine refused this transaction; the answer "
                                   "carries a reason code (docs/risk.md), never a threshold."),
    ErrorCode.RISK_RULE_INVALID: (422, "The risk rule does not parse, names an unknown field or "
                                       "operator, or the rule or list change would deny every "
                                       "ordinary payment."),
    ErrorCode.RISK_RULE_NOT_FOUND: (404, "No such risk rule."),
    ErrorCode.RISK_RULE_CONFLICT: (409, "The risk rule changed since the version you edited."),
    ErrorCode.RISK_CASE_NOT_FOUND: (404, "No such risk case."),
    ErrorCode.RISK_ALERT_NOT_FOUND: (404, "No such risk alert."),
    ErrorCode.MESSAGE_NOT_FOUND: (404, "No speaker message with this id."),
    ErrorCode.MESSAGE_DELIVERY_NOT_FOUND: (404, "No SMS or push delivery with this id."),
    ErrorCode.NOTICE_NOT_FOUND: (404, "No notice with this id for this merchant (another "
                                      "merchant's notices are not found either)."),
    ErrorCode.UNKNOWN_MESSAGE_EVENT: (400, "Not an event messages can be subscribed to "
                                           "(payment.succeeded, refund.succeeded, risk.alert, "
                                           "settlement.paid)."),
    ErrorCode.UNKNOWN_MESSAGE_CHANNEL: (400, "Not a delivery channel (speaker, webhook, sms, "
                                             "push, notice)."),
    ErrorCode.INVALID_PHONE: (400, "Not a mainland mobile number (11 digits, starting 13 to 19)."),
    ErrorCode.MESSAGE_RECIPIENT_MISSING: (400, "SMS or push is switched on without a phone "
                                               "number or push target to send to."),
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
    ErrorCode.ONBOARDING_FIELDS_MISSING: (422, "The merchant lacks fields the channel needs to "
                                               "register it; `missing` lists them. Nothing was "
                                               "sent."),
    ErrorCode.REGISTRATION_NOT_FOUND: (404, "No channel registration with this id."),
    ErrorCode.REGISTRATION_STATE_INVALID: (409, "The registration's state does not allow this "
                                                "change."),
    ErrorCode.ONBOARDING_NOT_SUPPORTED: (400, "This channel has no onboarding interface here, "
                                              "or is not enabled."),
    ErrorCode.CHANNEL_NOT_REGISTERED: (403, "The merchant is not registered (or is suspended) "
                                            "at this channel; payments there are refused."),
    ErrorCode.SUB_MERCHANT_REFUSED: (403, "The channel refused the merchant's registration "
                                          "there (unknown to it, not completed, or suspended "
                                          "by the channel); the order FAILED, nothing was "
                                          "charged."),
    ErrorCode.MERCHANT_USER_EXISTS: (409, "A portal user with this login name exists."),
    ErrorCode.MERCHANT_USER_NOT_FOUND: (404, "No portal user with this id for this merchant."),
    ErrorCode.LOGIN_FAILED: (401, "Wrong login name or password (which one is not said)."),
    ErrorCode.LOGIN_LOCKED: (423, "Too many wrong passwords: the portal user is locked for a "
                                  "while; try again later."),
    ErrorCode.PORTAL_FORBIDDEN: (403, "This portal user's role may not do this."),
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
