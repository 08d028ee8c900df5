"""Documents that must say what the code does: docs/errors.md is generated from the error-code
table (and every code the HTTP layer answers with is a member of it); the README's
configuration table names every setting."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from starlette.exceptions import HTTPException

from fulema.core.channel_settings import Section
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, errors_markdown
from fulema.core.web import install_error_handlers

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "errors.md"


def test_the_readme_configuration_table_names_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration"):readme.index("## Benchmarks")]
    sections = {name for name, info in Settings.model_fields.items()
                if isinstance(info.annotation, type) and issubclass(info.annotation, Section)}
    missing = [name for name in Settings.model_fields
               if (f"`FULEMA_{name.upper()}_*`" if name in sections
                   else f"`FULEMA_{name.upper()}`") not in table]
    assert missing == []
    assert sections >= {"wechat", "alipay", "unionpay", "ecny", "bankpay"}


def test_docs_errors_md_is_exactly_what_the_code_generates() -> None:
    assert DOCS.read_text(encoding="utf-8") == errors_markdown(), (
        "docs/errors.md is stale: run `fulema docs-errors`")


def test_every_code_is_documented_with_its_status() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    for code in ErrorCode:
        assert f"| `{code.value}` | {code.http_status} |" in doc


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/only-post")
    async def only_post() -> dict[str, str]:
        return {}

    @app.get("/teapot")
    async def teapot() -> dict[str, str]:
        raise HTTPException(status_code=418, detail="short and stout")

    return app


async def test_http_layer_refusals_answer_documented_codes_in_the_one_shape() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        wrong_method = await http.get("/only-post")
        teapot = await http.get("/teapot")
        missing = await http.get("/nowhere")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == ErrorCode.METHOD_NOT_ALLOWED == "METHOD_NOT_ALLOWED"
    assert teapot.status_code == 418
    assert teapot.json() == {"code": "HTTP_ERROR", "message": "short and stout",
                             "request_id": "-"}
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"
    for resp in (wrong_method, teapot, missing):
        assert set(resp.json()) == {"code", "message", "request_id"}
        assert resp.json()["code"] in {c.value for c in ErrorCode}
