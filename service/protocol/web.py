"""The playground page: GET / and its static files under /web/ (service/web, no build step).

Files are listed once at import and looked up by name, so a request can name only a file that
ships in service/web, never a path.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.errors import NotFound

WEB = Path(__file__).resolve().parent.parent / "web"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
FILES = {p.name: p for p in sorted(WEB.iterdir()) if p.suffix in TYPES} if WEB.is_dir() else {}
# Revalidate each time: a page from an older server version must not mix with newer modules.
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise NotFound(f"no playground file '{name}'")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)


@router.get("/")
async def index():
    return _file("index.html")


@router.get("/web/{name}")
async def asset(name: str):
    return _file(name)
