"""The web console at /console (SPEC §7): checked-in static files (functions/static/console),
no build step, no third-party code, served with a strict Content-Security-Policy. It signs in
with an API key kept in the browser tab's sessionStorage and works through the public API only,
so it can do exactly what the key can do."""

from __future__ import annotations

from typing import Any

from functions.static import CONSOLE_CSP, STATIC_DIR, file_table, serve
from functions.web import Call, Router


def register(router: Router) -> None:
    files = file_table(STATIC_DIR / "console")

    def console_page(call: Call) -> Any:
        return serve(files, "index.html", CONSOLE_CSP, cache_s=0)

    def console_asset(call: Call) -> Any:
        return serve(files, call.args["name"], CONSOLE_CSP, cache_s=300)

    router.route("/console", ["GET"])(console_page)
    router.route("/console/<name>", ["GET"])(console_asset)
