"""Static files: the studio's own CSS/JS, and htmx read from the installed
``django-js-lib-htmx`` package (never a CDN, never a copy in this repository).

No htmx extension is served: the package's SSE extension is htmx 1's (it logs a version
warning under htmx 2), so ``studio.js`` holds the page's ``EventSource`` itself."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from starlette.responses import Response

VENDOR = {
    "htmx.min.js": ("js_lib_htmx", "static/htmx/htmx.min.js"),
}
OWN = {"studio.css": "text/css", "studio.js": "text/javascript"}


@lru_cache(maxsize=16)
def read_vendor(name: str) -> bytes:
    package, path = VENDOR[name]
    return resources.files(package).joinpath(path).read_bytes()


@lru_cache(maxsize=16)
def read_own(name: str) -> bytes:
    return resources.files("branchwork.studio").joinpath("static", name).read_bytes()


def asset_response(name: str) -> Response | None:
    if name in VENDOR:
        body, media = read_vendor(name), "text/javascript"
    elif name in OWN:
        body, media = read_own(name), OWN[name]
    else:
        return None
    return Response(body, media_type=media, headers={
        "cache-control": "public, max-age=300",
        "x-content-type-options": "nosniff",
    })
