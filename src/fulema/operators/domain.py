"""Operator rules with no I/O: names, roles and the shape of an API token.

A token is `fop_<token id>.<secret>`: the id finds the one stored row (no scan, no timing
oracle over many rows), the secret is 32 random bytes of which only the SHA-256 is stored. A
slow password hash buys nothing for a 256-bit random secret (it cannot be guessed, only
stolen) and would cost every operator request; a leaked table of digests gives no token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from enum import StrEnum

from fulema.core.errors import ErrorCode, FulemaError

ROLES = ("reviewer", "risk", "finance", "admin")
NAME_PATTERN = r"^[a-z][a-z0-9._-]{1,39}$"
TOKEN_PREFIX = "fop_"  # noqa: S105 - the prefix of every token, not a secret
_TOKEN_RE = re.compile(r"^fop_(otk_[0-9a-f]{28})\.([A-Za-z0-9_-]{43})$")


class OperatorStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


def check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "name: 2-40 of a-z, 0-9, '.', '_', '-', starting with a letter")
    return name


def check_roles(roles: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """Known roles, at least one, sorted and without repeats."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          f"roles: unknown {', '.join(unknown)} (one of {', '.join(ROLES)})")
    if not roles:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "roles: at least one")
    return sorted(set(roles))


def encode_roles(roles: list[str], *, allow_none: bool = False) -> str:
    """`allow_none`: an operator created by a named admin holds no role until a second
    operator approves its roles (four eyes on every grant)."""
    if allow_none and not roles:
        return ""
    return ",".join(check_roles(roles))


def granted(before: frozenset[str] | set[str], after: Iterable[str]) -> list[str]:
    """The roles a change would add: any of them needs a second operator's approval."""
    return sorted(set(after) - set(before))


def decode_roles(text: str) -> frozenset[str]:
    return frozenset(r for r in text.split(",") if r)


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 characters


def token_text(token_id: str, secret: str) -> str:
    return f"{TOKEN_PREFIX}{token_id}.{secret}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """(token id, secret), or None for anything not shaped like one of our tokens."""
    m = _TOKEN_RE.fullmatch(token)
    return (m.group(1), m.group(2)) if m else None


def secret_matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret).encode(), stored_digest.encode())
