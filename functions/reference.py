"""The interactive API reference at /v1/docs: Swagger UI over /v1/openapi.json, with the
API-key (bearer) authorisation of the document's security schemes and try-it-out on.

Swagger UI's files come from the `swagger-ui-py` package (PyPI), installed with the function
in the cloud and in the local venv: nothing is fetched from a CDN or at run time. The page and
its initializer are ours (functions/static/docs); the key a user enters stays in the page's
memory (persistAuthorization is off).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from functions.static import REFERENCE_CSP, STATIC_DIR, file_table, serve
from functions.web import Call, Router

SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE")


def swagger_ui_dir() -> Path:
    """The static folder of the installed swagger-ui-py package (found without importing it:
    its package imports web-framework adapters we do not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (pip install -r requirements.lock)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def register(router: Router) -> None:
    page = file_table(STATIC_DIR / "docs")
    assets = {**file_table(swagger_ui_dir(), SWAGGER_FILES), **page}

    def reference_page(call: Call) -> Any:
        return serve(page, "index.html", REFERENCE_CSP, cache_s=60)

    def reference_asset(call: Call) -> Any:
        return serve(assets, call.args["name"], REFERENCE_CSP, cache_s=3600)

    router.route("/v1/docs", ["GET"])(reference_page)
    router.route("/v1/docs/assets/<name>", ["GET"])(reference_asset)
