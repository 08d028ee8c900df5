"""The API documentation pages (`/docs`, `/redoc`) with their scripts served by us.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN, so inside a bank's closed
network `/docs` is a blank page. The same files ship in the `fastapi-offline` wheel (Swagger UI,
ReDoc, a favicon; it depends on nothing but FastAPI and is kept current with Swagger UI): we
mount its `static/` folder and render FastAPI's page templates pointing there. Nothing on these
pages names another host.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from fulema.web.security_headers import script_nonce

STATIC_PREFIX = "/docs-static"
_PACKAGE_FILE = fastapi_offline.__file__
assert _PACKAGE_FILE is not None
STATIC_DIR = Path(_PACKAGE_FILE).parent / "static"

# ReDoc's sidebar shows Redocly's logo from their CDN: inside a closed network (and under our
# Content-Security-Policy) that is a refused request and a console error on every visit. We
# serve the bundle with that one address replaced by an empty inline image.
_REDOC_LOGO = b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'
_EMPTY_IMAGE = b'src:"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E"'
REDOC_SCRIPT = "/docs-assets/redoc.standalone.js"


def _redoc_bundle() -> bytes:
    bundle = (STATIC_DIR / "redoc.standalone.js").read_bytes()
    return bundle.replace(_REDOC_LOGO, _EMPTY_IMAGE)


# Swagger UI would otherwise offer to send the document to swagger.io's online validator.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Mount the assets and add both pages. Build the app with `docs_url=None, redoc_url=None`
    so FastAPI's CDN pages are not registered first."""
    if not (STATIC_DIR / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"Swagger UI files missing from {STATIC_DIR}: reinstall fastapi-offline")
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="docs-static")

    def root_of(openapi: str) -> str:
        return openapi[: -len(str(app.openapi_url))]

    def urls(request: Request) -> tuple[str, str]:
        root = str(request.scope.get("root_path", ""))  # behind a proxy that strips a prefix
        return f"{root}{app.openapi_url}", f"{root}{STATIC_PREFIX}"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi, static = urls(request)
        page = get_swagger_ui_html(
            openapi_url=openapi, title=f"{app.title} - API", swagger_ui_parameters=_SWAGGER_PARAMETERS,
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css", swagger_favicon_url=f"{static}/favicon.png")
        # The page starts Swagger UI from one inline script: it carries this answer's nonce,
        # which the Content-Security-Policy allows (web/security_headers.py).
        nonce = script_nonce(request)
        html = bytes(page.body).decode().replace("<script>", f'<script nonce="{nonce}">')
        return HTMLResponse(html)

    redoc_bundle = _redoc_bundle()

    @app.get(REDOC_SCRIPT, include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(redoc_bundle, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi, static = urls(request)
        return get_redoc_html(
            openapi_url=openapi, title=f"{app.title} - API reference",
            redoc_js_url=f"{root_of(openapi)}{REDOC_SCRIPT}", redoc_favicon_url=f"{static}/favicon.png",
            with_google_fonts=False)
