"""Pages in a real browser: Debian's Chromium driven by Playwright, against the platform
served on a free local port (SQLite, sandbox channels, in-process worker, the demo merchant),
as a merchant, an operator or a payer would meet it.

`live_site` is one server per test module (its tests make their own merchants, users and
orders, so they do not step on each other; it stops before the rest of the suite runs).
`open_page("phone" | "desktop", user_agent=...)` gives a page that records console errors.
`check_page(page, name)` asserts what every page must hold (no horizontal overflow: at 375 px
a bank's payers are on phones; no console error, which is how a CSP refusal or a broken script
shows) and saves a screenshot under `artifacts/screenshots/` (docs/screenshots/ shows some).

Chromium comes from Debian's package, not a browser download (closed network):
`scripts/test.sh` installs it where it can; without it these tests skip, saying so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fulema.core.channel_settings import RateLimitSection
from fulema.core.config import Settings
from fulema.core.db import Database
from tests.channels.live_server import bound_socket, serve

CHROMIUM = os.environ.get("FULEMA_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("FULEMA_TEST_ARTIFACTS", "artifacts")) / "screenshots"
VIEWPORTS = {"phone": {"width": 375, "height": 812}, "desktop": {"width": 1280, "height": 800}}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
T = TypeVar("T")


def _unavailable() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (scripts/test.sh does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


@dataclass
class LiveSite:
    url: str
    settings: Settings

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """Runs `work` against the site's database from the test (set-up and checks)."""
        async def go() -> T:
            db = Database(self.settings.database_url)
            try:
                return await work(db)
            finally:
                await db.dispose()
        return asyncio.run(go())


@pytest.fixture(scope="module")
def live_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    import fulema.app  # noqa: F401 - registers every table
    from fulema.app import create_app

    tmp = tmp_path_factory.mktemp("site")
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(environment="development", public_base_url=url, data_dir=tmp,
                        database_url=f"sqlite+aiosqlite:///{tmp / 'site.db'}",
                        operator_token="browser-test-operator-token-0123456789",
                        run_background=True, seed_demo=True, outbound_allow_loopback=True,
                        # Every page of the module comes from one address (127.0.0.1), where a
                        # bank's payers each have their own: at the default per-IP cashier rate
                        # (burst 20, degraded past 16) the later tests' payer was served degraded,
                        # so without the discount it came to see. Limits stay on, sized for one
                        # module of pages; tests/payments/test_rate_limits.py tests the limits.
                        ratelimit=RateLimitSection(cashier_ip_rate=50, cashier_ip_burst=1000))

    async def create() -> None:
        db = Database(settings.database_url)
        await db.create_all()
        await db.dispose()

    asyncio.run(create())
    with serve(create_app(settings), sock=sock):
        yield LiveSite(url=url, settings=settings)


@pytest.fixture(scope="module")
def browser(live_site: LiveSite) -> Iterator[Any]:
    """One Chromium per test module, stopped when the module ends: Playwright's sync API keeps
    an event loop marked running in this thread while it lives, and the async tests of the
    next module would find it there ("Cannot run the event loop while another loop is
    running")."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield chromium
    finally:
        chromium.close()
        pw.stop()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def opener(viewport: str = "phone", *, user_agent: str | None = None) -> Any:
        context = browser.new_context(viewport=VIEWPORTS[viewport], user_agent=user_agent,
                                      locale="zh-CN")
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []  # what check_page reads
        page.viewport_name = viewport
        page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error"
                else None)
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        return page

    yield opener
    for context in contexts:
        context.close()


def check_page(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Every page: no horizontal overflow, no console error; a screenshot saved. Returns it.
    `full_page=False` shoots the viewport only (the API reference is thousands of pixels tall)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}-{page.viewport_name}.png"
    page.screenshot(path=str(shot), full_page=full_page)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: {overflow}px of horizontal overflow at {page.viewport_size}"
    assert not page.console_errors, f"{name}: console errors {page.console_errors}"
    return shot
