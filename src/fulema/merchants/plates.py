"""QR plates (收款码牌): the URL a printed static code carries, and its PNG.

The code encodes a URL on our own domain (`/pay/q/{code}`), not a channel's: whichever app
scans it opens our cashier, which recognises the app and hands over to that channel. That is
what makes one printed code "aggregated".
"""

from __future__ import annotations

import io

import segno

from fulema.core.config import Settings


def plate_url(settings: Settings, code: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/pay/q/{code}"


def plate_png(url: str, *, scale: int = 10) -> bytes:
    """A PNG of the QR code for `url`.

    Error correction Q (25%): a plate sits on a counter for years and gets scratched and
    splashed; segno raises the level further for free when the data leaves room (boost_error).
    The quiet zone stays at the standard 4 modules so phone cameras find the code.
    """
    qr = segno.make_qr(url, error="q", boost_error=True)
    out = io.BytesIO()
    qr.save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
