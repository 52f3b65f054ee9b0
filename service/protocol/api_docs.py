"""/docs (Swagger UI) and /redoc (ReDoc) with their scripts served from here, not from a CDN.

FastAPI's own pages load Swagger UI and ReDoc from jsdelivr, so without internet they are blank.
The assets come from the fastapi-offline package (MIT; it ships Swagger UI 5 and ReDoc 2 as
released), served under /web/docs/, which needs no API key like the playground's files.
"""

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

ASSETS = Path(str(files("fastapi_offline") / "static"))
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
FILES = {p.name: p for p in sorted(ASSETS.iterdir()) if p.suffix in TYPES}
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
PREFIX = "/web/docs"
TITLE = "modelserve"

router = APIRouter(include_in_schema=False)


def _urls(request: Request) -> tuple[str, str]:
    """(the OpenAPI document, the assets' folder), under the root path a proxy may add."""
    root = request.scope.get("root_path", "")
    return f"{root}/openapi.json", f"{root}{PREFIX}"


@router.get("/docs")
async def swagger_ui(request: Request):
    openapi, assets = _urls(request)
    return get_swagger_ui_html(
        openapi_url=openapi, title=f"{TITLE} - Swagger UI", oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js", swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
    )


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect():
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request):
    openapi, assets = _urls(request)
    return get_redoc_html(
        openapi_url=openapi, title=f"{TITLE} - ReDoc", redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png", with_google_fonts=False,
    )


@router.get(PREFIX + "/{name}")
async def asset(name: str):
    path = FILES.get(name)
    if path is None:
        raise HTTPException(404, f"no API docs file '{name}'")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)
