"""The page frame itself: the shared stylesheet is served from this host, and the home page
holds on a phone and a desktop without overflow or console errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.browser.conftest import LiveSite, check_page


def test_the_stylesheet_is_served_from_this_host(live_site: LiveSite) -> None:
    answer = httpx.get(f"{live_site.url}/static/fulema.css")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/css")
    assert "http" not in answer.text  # nothing fetched from another host


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_the_home_page_fits_the_screen(live_site: LiveSite, open_page: Callable[..., Any],
                                       viewport: str) -> None:
    page = open_page(viewport)
    page.goto(f"{live_site.url}/")
    assert "付了码" in page.title() or "Fulema" in page.title()
    check_page(page, "home")
