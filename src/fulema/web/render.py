"""Jinja2 rendering for the portal, the console and the cashier's newer pages.

One environment, autoescaping on, undefined names an error (a typo in a template fails its
test instead of printing nothing). Templates extend `base.html`, which links only this host's
`/static/` files and gives inline scripts this answer's CSP nonce (web/security_headers.py).
Filters speak the pages' language: `yuan` turns integer fen into "12.50" (pages are the only
place amounts become yuan, ARCHITECTURE: money converted only at the edge).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from fulema.core.money import Money
from fulema.web.security_headers import script_nonce


def _yuan(fen: int | Money | None) -> str:
    if fen is None:
        return "—"
    return (fen if isinstance(fen, Money) else Money(int(fen))).to_yuan()


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return value.strftime(fmt) if value is not None else "—"


env = Environment(loader=PackageLoader("fulema.web", "templates"),
                  autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
env.filters["yuan"] = _yuan
env.filters["when"] = _when


def render(request: Request, template: str, *, status_code: int = 200,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """The page `template` with `context`, plus what every page needs: the request, its CSP
    nonce, and the page language (`?lang=en` or the `lang` cookie; Chinese first)."""
    lang = request.query_params.get("lang") or request.cookies.get("lang") or "zh"
    context.setdefault("nav", [])
    context.setdefault("user_label", "")
    context.setdefault("csrf_token", "")
    html = env.get_template(template).render(request=request, csp_nonce=script_nonce(request),
                                             lang="en" if lang == "en" else "zh", **context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
