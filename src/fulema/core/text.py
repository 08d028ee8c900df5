"""Reading numbers out of untrusted text.

`str.isdigit()` is true for '²', '٣' and '５', which `int()` then refuses or reads as another
digit: a check that passes and a parse that raises is a 500 (and, before logging was
configured, a traceback with every local variable). Every number a request, a header or a
channel's answer carries is read here: ASCII digits only.
"""

from __future__ import annotations


def is_ascii_digits(text: str) -> bool:
    """Non-empty and nothing but the ASCII digits 0-9."""
    return bool(text) and text.isascii() and text.isdigit()


def ascii_int(text: str) -> int | None:
    """The number `text` spells in ASCII digits, or None."""
    return int(text) if is_ascii_digits(text) else None
