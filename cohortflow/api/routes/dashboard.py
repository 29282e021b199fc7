"""The live dashboard: one static page at ``/`` and its script and style under ``/static/``, open without a token.

The page holds no data: it asks for a token (kept in the browser's sessionStorage) and reads
the /v1 routes with it, so it shows exactly what that token may see. Its files ship in the
package (``cohortflow/api/static``); no build step, nothing fetched from elsewhere.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cohortflow.api.errors import ApiError

router = APIRouter(include_in_schema=False)

# What the page may load and reach: its own origin only (no CDN, no inline script).
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The files the page is made of, and their media types: nothing else under static/ is served.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


@cache
def asset(name: str) -> tuple[bytes, str]:
    """The bytes of a shipped file and their strong ETag."""
    raw = resources.files("cohortflow.api").joinpath("static", name).read_bytes()
    return raw, '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


def _file(request: Request, name: str) -> Response:
    raw, tag = asset(name)
    headers = {**_HEADERS, "ETag": tag, "Cache-Control": "no-cache"}
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type=FILES[name], headers=headers)


@router.get("/")
async def dashboard(request: Request) -> Response:
    """The dashboard page."""
    return _file(request, "index.html")


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    """The page's script and style sheet."""
    if name not in FILES or name == "index.html":
        raise ApiError(404, "not_found", f"/static/{name[:100]}: no such file", "name")
    return _file(request, name)
