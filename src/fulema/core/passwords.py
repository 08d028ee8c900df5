"""Password hashing for people who log in to pages (merchant users, operators).

argon2id through argon2-cffi (the reference implementation's binding): a leaked table of
hashes must not give back passwords, and a login is rare enough to pay ~50 ms for it. The cost
is the bank's setting (`FULEMA_PASSWORD_HASH_TIME_COST`, `FULEMA_PASSWORD_HASH_MEMORY_KIB`,
installed by the composition root through `configure`); a stored hash made at another cost is
re-made at its owner's next successful login (`needs_rehash` + `rehash`). API tokens are random
256-bit secrets and stay on SHA-256 (operators/domain.py).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError

_hasher = PasswordHasher()
MIN_LENGTH = 10


def configure(settings: Settings) -> None:
    """Hash at the bank's cost from now on (argon2-cffi's defaults are 3 passes and 64 MiB).
    Called once by each entry point that may hash: the app and the password commands."""
    global _hasher  # one hasher per process, set once at start-up
    _hasher = PasswordHasher(time_cost=settings.password_hash_time_cost,
                             memory_cost=settings.password_hash_memory_kib)


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
    """True when the stored hash was made at another cost than the one configured now."""
    return _hasher.check_needs_rehash(stored_hash)


def rehash(password: str) -> str:
    """The hash of a password that has just been verified, at today's cost. No strength check:
    a password accepted under older rules must still let its owner in."""
    return _hasher.hash(password)


# A hash to verify against when the login name is unknown, so that an unknown name costs the
# same time as a wrong password (no user enumeration by timing).
DUMMY_HASH = _hasher.hash("not-a-real-password-0")
