"""/docs without the internet: Swagger UI from files shipped in a Python package (fastapi-offline's),
served by FastAPI's own self-hosted docs recipe. FastAPI's default page loads them from a CDN, which
leaves /docs blank on an offline machine."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs-static"


def swagger_files() -> Path | None:
    """The folder holding swagger-ui-bundle.js and swagger-ui.css, if fastapi-offline is installed."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def add_offline_docs(app: FastAPI) -> bool:
    """Serve /docs from local files; False (FastAPI's CDN page stays) when none are installed.

    The app must be created with `docs_url=None` for this to take /docs.
    """
    folder = swagger_files()
    if folder is None:
        return False
    app.mount(STATIC_URL, StaticFiles(directory=folder), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon.png",
        )

    return True
