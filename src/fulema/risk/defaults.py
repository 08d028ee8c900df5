"""The rules a fresh installation starts with: the PBOC's barcode-payment caps and one rule of
each built-in kind, with thresholds a bank tunes through the operator API.

The PBOC's 《条码支付业务规范(试行)》 (银发〔2017〕296号, in force since 2018-04-01) grades a
barcode payment by the strength of the payer's authentication and caps what one payer may pay
per day through one bank account (or all of one institution's payment accounts):

  A  two or more factors including a digital certificate or e-signature: agreed with the payer
  B  two or more factors without a certificate or e-signature: 5,000 yuan a day
  C  fewer than two factors: 1,000 yuan a day
  D  static codes (the payer scans a printed plate), whatever the authentication: 500 yuan a day

They bind the issuer, so they apply here where the bank is the issuer: its own channel
(`bankpay`). Amounts are fen.
"""

from __future__ import annotations

from typing import Any

YUAN = 100
SMALL_SHOP_MCCS = ["5411", "5499", "5812", "5814", "5331"]

PBOC_RULES: list[dict[str, Any]] = [
    {"id": "pboc-static-daily", "outcome": "DENY", "reason": "PAYER_DAILY_LIMIT",
     "regulatory": True,
     "note": "296号 level D: static codes, 500 yuan per payer per day",
     "when": [{"field": "channel", "op": "eq", "value": "bankpay"},
              {"field": "way_code", "op": "eq", "value": "QR_STATIC"}],
     "counter": {"measure": "sum", "by": "payer", "window": "day"}, "threshold": 500 * YUAN},
    {"id": "pboc-dynamic-c-daily", "outcome": "CHALLENGE", "reason": "STRONG_AUTH_REQUIRED",
     "regulatory": True,
     "note": "296号 level C: payer-presented codes without a second factor, 1,000 yuan per "
             "day; above it the bank's password step (level B) is forced",
     "when": [{"field": "channel", "op": "eq", "value": "bankpay"},
              {"field": "way_code", "op": "in", "value": ["BARCODE", "QR_DYNAMIC", "H5"]}],
     "counter": {"measure": "sum", "by": "payer", "window": "day"}, "threshold": 1_000 * YUAN},
    {"id": "pboc-dynamic-b-daily", "outcome": "DENY", "reason": "PAYER_DAILY_LIMIT",
     "regulatory": True,
     "note": "296号 level B: two factors without a certificate, 5,000 yuan per payer per day",
     "when": [{"field": "channel", "op": "eq", "value": "bankpay"},
              {"field": "way_code", "op": "in", "value": ["BARCODE", "QR_DYNAMIC", "H5"]}],
     "counter": {"measure": "sum", "by": "payer", "window": "day"}, "threshold": 5_000 * YUAN},
    # A payer code does not name its payer before the bank answers, so the daily rules above
    # see a barcode payment only where the payer is known; one payment alone above a cap is
    # caught here.
    {"id": "pboc-dynamic-c-single", "outcome": "CHALLENGE", "reason": "STRONG_AUTH_REQUIRED",
     "regulatory": True, "note": "one payment above the level C daily cap",
     "when": [{"field": "channel", "op": "eq", "value": "bankpay"},
              {"field": "way_code", "op": "eq", "value": "BARCODE"},
              {"field": "amount", "op": "gt", "value": 1_000 * YUAN}]},
    {"id": "pboc-dynamic-b-single", "outcome": "DENY", "reason": "PAYER_DAILY_LIMIT",
     "regulatory": True, "note": "one payment above the level B daily cap",
     "when": [{"field": "channel", "op": "eq", "value": "bankpay"},
              {"field": "way_code", "op": "eq", "value": "BARCODE"},
              {"field": "amount", "op": "gt", "value": 5_000 * YUAN}]},
]

BANK_RULES: list[dict[str, Any]] = [
    # lists
    {"id": "blacklist-payer", "outcome": "DENY", "reason": "PAYER_BLOCKED",
     "when": [{"field": "payer_id", "op": "in_list", "value": "payer-blacklist"}]},
    {"id": "blacklist-merchant", "outcome": "DENY", "reason": "MERCHANT_BLOCKED",
     "when": [{"field": "merchant_id", "op": "in_list", "value": "merchant-blacklist"}]},
    {"id": "blacklist-device", "outcome": "DENY", "reason": "DEVICE_BLOCKED",
     "when": [{"field": "device_id", "op": "in_list", "value": "device-blacklist"}]},
    {"id": "blacklist-ip", "outcome": "DENY", "reason": "IP_BLOCKED",
     "when": [{"field": "client_ip", "op": "in_list", "value": "ip-blacklist"}]},
    {"id": "whitelist-merchant", "outcome": "ALLOW",
     "when": [{"field": "merchant_id", "op": "in_list", "value": "merchant-whitelist"}]},
    # amount limits per category and per merchant
    {"id": "small-shop-single", "outcome": "REVIEW", "reason": "AMOUNT_UNUSUAL",
     "when": [{"field": "mcc", "op": "in", "value": SMALL_SHOP_MCCS},
              {"field": "amount", "op": "gt", "value": 20_000 * YUAN}]},
    {"id": "merchant-daily", "outcome": "REVIEW", "reason": "MERCHANT_DAILY_VOLUME",
     "counter": {"measure": "sum", "by": "merchant", "window": "day"},
     "threshold": 500_000 * YUAN},
    {"id": "merchant-monthly", "outcome": "REVIEW", "reason": "MERCHANT_MONTHLY_VOLUME",
     "counter": {"measure": "sum", "by": "merchant", "window": "month"},
     "threshold": 5_000_000 * YUAN},
    # velocity
    {"id": "payer-velocity", "outcome": "REVIEW", "reason": "PAYER_VELOCITY",
     "counter": {"measure": "count", "by": "payer", "window": 600}, "threshold": 10},
    {"id": "terminal-velocity", "outcome": "REVIEW", "reason": "TERMINAL_VELOCITY",
     "counter": {"measure": "count", "by": "terminal", "window": 60}, "threshold": 30},
    {"id": "device-velocity", "outcome": "REVIEW", "reason": "DEVICE_VELOCITY",
     "counter": {"measure": "count", "by": "device", "window": 3600}, "threshold": 20},
    # patterns
    {"id": "night-small-shop", "outcome": "REVIEW", "reason": "UNUSUAL_HOUR",
     "when": [{"field": "mcc", "op": "in", "value": SMALL_SHOP_MCCS},
              {"field": "hour", "op": "hour_between", "value": [1, 5]},
              {"field": "amount", "op": "ge", "value": 1_000 * YUAN}]},
    {"id": "round-burst", "outcome": "REVIEW", "reason": "ROUND_AMOUNT_BURST",
     "when": [{"field": "amount", "op": "multiple_of", "value": 100 * YUAN},
              {"field": "amount", "op": "ge", "value": 1_000 * YUAN}],
     "counter": {"measure": "count", "by": "merchant", "window": 3600}, "threshold": 3},
    {"id": "round-repeat-payer", "outcome": "REVIEW", "reason": "ROUND_AMOUNT_REPEAT",
     "note": "cash-out: the same cards paying large round amounts again and again",
     "when": [{"field": "amount", "op": "multiple_of", "value": 100 * YUAN},
              {"field": "amount", "op": "ge", "value": 2_000 * YUAN}],
     "counter": {"measure": "count", "by": "payer", "window": 7 * 86_400}, "threshold": 3},
    {"id": "split-under-limit", "outcome": "REVIEW", "reason": "SPLIT_TRANSACTIONS",
     "when": [{"field": "amount", "op": "ge", "value": 900 * YUAN},
              {"field": "amount", "op": "lt", "value": 1_000 * YUAN}],
     "counter": {"measure": "count", "by": "payer", "window": 900}, "threshold": 2},
    {"id": "many-payers", "outcome": "REVIEW", "reason": "COLLECTION_PATTERN",
     "note": "collection fraud gathers sums of 100 yuan and more; a canteen's rush does not",
     "when": [{"field": "amount", "op": "ge", "value": 100 * YUAN}],
     "counter": {"measure": "distinct_payers", "by": "merchant", "window": 60}, "threshold": 15},
    {"id": "refund-ratio", "outcome": "REVIEW", "reason": "REFUND_RATIO",
     "counter": {"measure": "refund_ratio", "by": "merchant", "window": 7 * 86_400},
     "threshold": 300},
    {"id": "new-merchant-large", "outcome": "REVIEW", "reason": "NEW_MERCHANT",
     "when": [{"field": "merchant_age_days", "op": "lt", "value": 7},
              {"field": "amount", "op": "gt", "value": 5_000 * YUAN}]},
]

DEFAULT_RULES: list[dict[str, Any]] = [*PBOC_RULES, *BANK_RULES]
