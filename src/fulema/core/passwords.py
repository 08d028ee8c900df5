"""Password hashing for people who log in to pages (merchant users, operators).

argon2id through argon2-cffi (the reference implementation's binding) with its default cost:
a leaked table of hashes must not give back passwords, and a login is rare enough to pay
~50 ms for it. API tokens are random 256-bit secrets and stay on SHA-256 (operators/domain.py).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fulema.core.errors import ErrorCode, FulemaError

_hasher = PasswordHasher()
MIN_LENGTH = 10


def check_strength(password: str) -> str:
    """The bank's usual floor: 10+ characters with letters and digits."""
    if (len(password) < MIN_LENGTH or not any(c.isalpha() for c in password)
            or not any(c.isdigit() for c in password)):
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          f"password: at least {MIN_LENGTH} characters, letters and digits")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_strength(password))


def verify_password(stored_hash: str, password: str) -> bool:
    """True when `password` matches; False for a wrong password or a malformed stored hash."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


# A hash to verify against when the login name is unknown, so that an unknown name costs the
# same time as a wrong password (no user enumeration by timing).
DUMMY_HASH = _hasher.hash("not-a-real-password-0")
