"""The API documentation pages (`/docs` Swagger UI, `/redoc` ReDoc) run under the pages'
Content-Security-Policy with their files from this host (web/docs_assets.py): in a real browser
they render the operations and log no console error, which is how a refused script, style or
worker would show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import LiveSite, check_page


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_swagger_ui_renders_the_operations_under_the_policy(
        live_site: LiveSite, open_page: Callable[..., Any], viewport: str) -> None:
    page = open_page(viewport)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{live_site.url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    assert page.locator(".opblock-summary-path", has_text="/api/v1/orders").count() > 0
    assert all(url.startswith(live_site.url) or url.startswith("data:") for url in requested), \
        [u for u in requested if not u.startswith(live_site.url)]
    check_page(page, "docs-swagger", full_page=False)


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_redoc_renders_the_reference_under_the_policy(
        live_site: LiveSite, open_page: Callable[..., Any], viewport: str) -> None:
    page = open_page(viewport)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{live_site.url}/redoc")
    page.wait_for_selector("h1", timeout=20_000)
    page.wait_for_function("document.body.innerText.includes('/api/v1/orders')", timeout=20_000)
    assert all(url.startswith(live_site.url) or url.startswith(("data:", "blob:"))
               for url in requested), [u for u in requested if not u.startswith(live_site.url)]
    check_page(page, "docs-redoc", full_page=False)
