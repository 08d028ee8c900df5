"""Time-ordered string ids made in the application.

Distributed SQL (TDSQL, TiDB) turns an auto-increment key into one hot region, and ids made by
the database cannot be known before the insert. These ids are a type prefix, 12 hex digits of
milliseconds and 16 hex digits of randomness: sortable by creation, unique without coordination.
(A ULID library would do the core of this; the prefix and plain-hex text are the part we need,
and it is a dozen lines.)
"""

from __future__ import annotations

import secrets

from fulema.core.clock import clock


def new_id(prefix: str) -> str:
    ms = int(clock.now().timestamp() * 1000)
    return f"{prefix}_{ms:012x}{secrets.token_hex(8)}"


def new_token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)
