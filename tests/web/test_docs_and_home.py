"""`/docs`, `/redoc` and `/` as a person opens them inside a closed network: every page and
every file it loads comes from this server, and every link on the home page leads somewhere."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from fulema.app import create_app
from fulema.core.config import DEV_PLACEHOLDER, Settings
from fulema.core.db import Database

README = Path(__file__).resolve().parents[2] / "README.md"
Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client(sqlite_db: Database, settings: Settings) -> Client:
    """The real app over ASGI, its lifespan run (which seeds the demo when asked)."""

    @asynccontextmanager
    async def make(*, seed_demo: bool = False) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=FastAPI())
        http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        app = create_app(settings.model_copy(update={"seed_demo": seed_demo}), db=sqlite_db,
                         http=http)
        transport.app = app
        async with app.router.lifespan_context(app):
            yield http

    return make


class _Refs(HTMLParser):
    """Every URL a page loads or links to: src, href, and ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in {"src", "href", "spec-url"} and v]


def refs(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    return parser.urls


def assert_names_no_other_host(html: str) -> None:
    assert re.findall(r"(?:https?:)?//[\w.-]+", html) == [], "the page names another host"


@pytest.mark.parametrize(("page", "kinds"), [
    ("/docs", {"javascript", "css", "png"}),
    ("/redoc", {"javascript", "png"}),
])
async def test_docs_pages_load_everything_from_this_server(client: Client, page: str,
                                                           kinds: set[str]) -> None:
    async with client() as http:
        resp = await http.get(page)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")
        assert_names_no_other_host(resp.text)

        assets = [u for u in refs(resp.text) if u.startswith(("/docs-static/", "/docs-assets/"))]
        seen = set()
        for url in assets:
            asset = await http.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url  # the real file, not an empty stub
            seen |= {k for k in kinds if k in asset.headers["content-type"]}
        assert seen == kinds

        # the document the page renders is ours too, and answers
        spec_url = (re.search(r"url: '([^']+)'", resp.text) or re.search(
            r'spec-url="([^"]+)"', resp.text))
        assert spec_url is not None
        assert spec_url.group(1) == "/openapi.json"
        spec = await http.get(spec_url.group(1))
        assert spec.status_code == 200
        assert spec.json()["info"]["title"] == "Fulema 付了码"


async def test_swagger_ui_files_are_the_real_swagger_ui(client: Client) -> None:
    async with client() as http:
        js = await http.get("/docs-static/swagger-ui-bundle.js")
        css = await http.get("/docs-static/swagger-ui.css")
    assert b"SwaggerUIBundle" in js.content
    assert b".swagger-ui" in css.content


async def test_redoc_bundle_is_the_real_redoc_without_its_cdn_logo(client: Client) -> None:
    async with client() as http:
        js = await http.get("/docs-assets/redoc.standalone.js")
    assert js.status_code == 200
    assert b"Redoc" in js.content
    assert len(js.content) > 500_000
    assert b"cdn.redoc.ly" not in js.content


@pytest.mark.parametrize("path", [
    "/docs-static/no-such-file.js",
    "/docs-static/..%2F__init__.py",      # out of the static folder, encoded
    "/docs-static/%2E%2E/core.py",
])
async def test_docs_static_serves_nothing_else(client: Client, path: str) -> None:
    async with client() as http:
        resp = await http.get(path)
    assert resp.status_code == 404
    assert b"fastapi" not in resp.content.lower()


async def test_the_docs_pages_stay_out_of_the_api_document(client: Client) -> None:
    async with client() as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert not {p for p in paths if p in {"/", "/docs", "/redoc"} or p.startswith("/docs-static")}


async def test_home_page_leads_to_the_docs_health_and_demo_cashier(client: Client) -> None:
    async with client(seed_demo=True) as http:
        resp = await http.get("/")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")
        assert "付了码 Fulema" in resp.text
        assert "portal" in resp.text
        assert "console" in resp.text
        assert_names_no_other_host(resp.text)
        links = refs(resp.text)
        assert links == ["/portal/", "/console/", "/docs", "/redoc", "/healthz",
                         "/pay/q/DEMO000001"]
        for link in links:  # every link leads to a page that answers
            followed = await http.get(link, headers={"user-agent": "Mozilla/5.0"},
                                      follow_redirects=True)  # the portal: to its login
            assert followed.status_code == 200, link
        cashier = await http.get("/pay/q/DEMO000001", headers={"user-agent": "Mozilla/5.0"})
        assert "付了码演示商户" in cashier.text


async def test_home_page_without_the_demo_links_no_cashier(client: Client) -> None:
    async with client(seed_demo=False) as http:
        resp = await http.get("/")
        assert resp.status_code == 200
        assert refs(resp.text) == ["/portal/", "/console/", "/docs", "/redoc", "/healthz"]
        assert (await http.get("/pay/q/DEMO000001")).status_code == 404  # indeed not seeded


async def test_unknown_paths_still_answer_json_404(client: Client) -> None:
    async with client() as http:
        resp = await http.get("/no-such-page")
    assert resp.status_code == 404
    assert resp.json()["code"] == "NOT_FOUND"


async def test_the_readme_curl_line_works_on_the_embedded_default(sqlite_db: Database,
                                                                   settings: Settings) -> None:
    line = re.search(r'curl -H "Authorization: Bearer ([^"]+)" http://127\.0\.0\.1:8000(\S+)',
                     README.read_text(encoding="utf-8"))
    assert line is not None, "the README lost its operator curl line"
    token, path = line.groups()
    assert token == DEV_PLACEHOLDER  # the embedded default's token:
    assert Settings.model_fields["operator_token"].default == DEV_PLACEHOLDER

    embedded = settings.model_copy(update={"operator_token": DEV_PLACEHOLDER,
                                           "environment": "development", "seed_demo": True})
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")
    app = create_app(embedded, db=sqlite_db, http=http)
    transport.app = app
    async with app.router.lifespan_context(app):
        resp = await http.get(path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.text
        # the demo merchant, and the demo's water company and charity fund (billing/demo_seed)
        assert [m["name"] for m in resp.json()["data"]] == ["付了码演示商户", "演示自来水公司",
                                                            "演示公益基金会"]
        wrong = await http.get(path, headers={"Authorization": "Bearer dev-only-change-m"})
        assert wrong.status_code == 401

    # outside development the placeholder is refused before the server starts
    with pytest.raises(RuntimeError, match="FULEMA_OPERATOR_TOKEN"):
        create_app(embedded.model_copy(update={"environment": "production", "seed_demo": False}),
                   db=sqlite_db, http=http)
    await http.aclose()
