"""Masking of personal identifiers for every reader who does not need them whole: API answers,
pages, logs and broker events.

* a mainland mobile number keeps its first 3 and last 4 digits: ``138****5678``;
* an account or card number keeps its first 4 and last 4: ``6222****1234`` (the issuer's BIN
  prefix and the digits people check); one of 8 digits or fewer keeps only its last 4;
* anything else shorter than that is masked whole.

The full value is read by code that acts on it (settlement pays to the full account) and, by a
person, only through an explicit reveal that is audited (docs/security.md, "Masking").
`mask_fields` is the safety net for structured data leaving the platform: every key whose name
says phone, mobile, account or card number is masked wherever it sits in the structure.
"""

from __future__ import annotations

import re
from typing import Any

STARS = "****"


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` -> ``138****5678``."""
    if phone is None:
        return None
    digits = phone.strip()
    if len(digits) < 8:
        return STARS
    return f"{digits[:3]}{STARS}{digits[-4:]}"


def mask_account(number: str | None) -> str | None:
    """``6222021234567891234`` -> ``6222****1234``; ``12345678`` -> ``****5678``."""
    if number is None:
        return None
    digits = number.strip()
    if len(digits) <= 4:
        return STARS
    if len(digits) <= 8:
        return f"{STARS}{digits[-4:]}"
    return f"{digits[:4]}{STARS}{digits[-4:]}"


def mask_identifier(value: str | None) -> str | None:
    """A payer id (openid, Alipay user id) for a reader who needs to tell payers apart by eye,
    not to act on them: first 3 and last 3 kept, ``oUpF8uMuAJO_M2pxb1Q9zNjWeS6o`` ->
    ``oUp****S6o``; one of 10 characters or fewer is masked whole."""
    if value is None:
        return None
    if len(value) <= 10:
        return STARS
    return f"{value[:3]}{STARS}{value[-3:]}"


_PHONE_KEY = re.compile(r"(phone|mobile|tel)(_?(no|number))?$", re.IGNORECASE)
_ACCOUNT_KEY = re.compile(r"(account|card|iban|bank_?acct)(_?(no|number|num))?$",
                          re.IGNORECASE)
_NOT_NUMBERS = re.compile(r"(_name|_type|_id|_masked|_hash)$", re.IGNORECASE)


def mask_fields(data: Any) -> Any:
    """A copy of `data` (dicts, lists, scalars) with phone and account/card values masked."""
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            name = str(key)
            if isinstance(value, str) and not _NOT_NUMBERS.search(name):
                if _PHONE_KEY.search(name):
                    out[key] = mask_phone(value)
                    continue
                if _ACCOUNT_KEY.search(name):
                    out[key] = mask_account(value)
                    continue
            out[key] = mask_fields(value)
        return out
    if isinstance(data, list | tuple):
        return [mask_fields(v) for v in data]
    return data
