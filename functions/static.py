"""Static files the api function serves (the API reference, the web console), with the
headers a browser needs to run them safely: a strict Content-Security-Policy, nosniff, no
framing, and no caching of anything a deploy changes without renaming.

Files are looked up by name in a fixed table per directory, never by a path from the request,
so no request can read outside the directories.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import flask

from wagate.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"

# No inline script anywhere; styles only from our own files (Swagger UI sets style attributes,
# so its page allows inline styles, nothing else).
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
REFERENCE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


def file_table(directory: Path, names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """name → path of the files of `directory` (only `names` when given) that exist."""
    if names is None:
        return {p.name: p for p in sorted(directory.iterdir()) if p.is_file()}
    return {n: directory / n for n in names if (directory / n).is_file()}


def serve(table: dict[str, Path], name: str, csp: str, *, cache_s: int = 300) -> flask.Response:
    path = table.get(name)
    if path is None:
        raise NotFound(f"no such file: {name}", field="path")
    content_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
    content_type = content_type or "application/octet-stream"
    if path.suffix in (".html", ".js", ".css"):
        content_type += "; charset=utf-8"
    response = flask.Response(path.read_bytes(), content_type=content_type)
    secure(response, csp)
    response.headers["Cache-Control"] = f"public, max-age={cache_s}"
    return response


def secure(response: flask.Response, csp: str) -> flask.Response:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
