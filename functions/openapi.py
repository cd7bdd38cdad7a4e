"""The OpenAPI 3.1 document, generated from the routes' `Doc` and the pydantic models.

Hand-assembled rather than through a framework: functions-framework gives us Flask without a
schema layer, and pydantic already emits JSON Schema 2020-12, which OpenAPI 3.1 uses as is.
The document is checked in at docs/openapi.json; a test fails when it drifts from the code.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from functions.web import Route
from wagate import __version__

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
                "request_id": {"type": "string"},
            },
        }
    },
}
ERROR_STATUSES = {
    400: "Validation failed (field-level details)",
    401: "Missing, invalid or revoked key",
    404: "Not found (also: another tenant's resource)",
    405: "Method not allowed",
    409: "Conflict (e.g. Idempotency-Key reused with another body)",
    413: "Body too large",
    429: "Rate limited (Retry-After, RateLimit-* headers)",
    503: "A dependency is unavailable (Retry-After)",
}
ALLOW = {
    "Allow": {
        "description": "The methods the path takes",
        "required": True,
        "schema": {"type": "string"},
    }
}


def _integer_header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "integer"}}


RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": _integer_header("Requests allowed per window for this route"),
    "RateLimit-Remaining": _integer_header(
        "About how many requests are left in the window (an estimate across instances)"
    ),
    "RateLimit-Reset": _integer_header("Seconds until the window ends"),
}
RETRY_AFTER = {"Retry-After": _integer_header("Seconds to wait before retrying")}


def _path(rule: str) -> tuple[str, list[str]]:
    names = re.findall(r"<(?:[^:>]+:)?([^>]+)>", rule)
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule), names


def build(routes: list[Route], *, title: str = "wagate API") -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for route in routes:
        if route.doc is None:
            continue
        if route.doc.body is not None:
            models.add(route.doc.body)
        models.update(m for m in route.doc.responses.values() if not isinstance(m, str))
    ordered = sorted(models, key=lambda m: m.__name__)
    _, schemas = models_json_schema(
        [(m, "validation" if _is_request(m, routes) else "serialization") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.doc is None:
            continue
        path, params = _path(route.rule)
        for method in route.methods:
            paths.setdefault(path, {})[method.lower()] = _operation(route, params)
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"operationIds must be unique: {repeated} name several operations")
    components = dict(schemas.get("$defs", {}))
    components["Error"] = ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": __version__,
            "description": "A WhatsApp gateway for Google Cloud. All bodies are JSON; errors "
            'are {"error": {code, message, details, request_id}}.',
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "wg_live_… key"},
                "adminKey": {"type": "http", "scheme": "bearer", "description": "admin key"},
            },
        },
    }


def _is_request(model: type[BaseModel], routes: list[Route]) -> bool:
    return any(r.doc is not None and r.doc.body is model for r in routes)


def _operation(route: Route, params: list[str]) -> dict[str, Any]:
    doc = route.doc
    assert doc is not None
    op: dict[str, Any] = {
        "summary": doc.summary,
        "operationId": _operation_id(route),
        "tags": list(doc.tags),
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
        + [
            {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
            for n, (t, d) in doc.query.items()
        ]
        + [
            {
                "name": n,
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": d,
            }
            for n, d in doc.headers.items()
        ],
        "responses": {},
    }
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    if doc.auth == "tenant":
        op["security"] = [{"apiKey": []}]
    elif doc.auth == "admin":
        op["security"] = [{"adminKey": []}]
    if doc.body is not None:
        op["responses"]["415"] = {
            "description": "The body is not JSON (Content-Type must be application/json)",
            "content": error_ref,
        }
        op["requestBody"] = {
            "required": doc.body_required,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{doc.body.__name__}"}
                }
            },
        }
    for status, model in sorted(doc.responses.items()):
        if isinstance(model, str) and status == 415:
            op["responses"]["415"] = {"description": model, "content": error_ref}
        elif isinstance(model, str):
            content = {model: {"schema": {"type": "string"}}} if "/" in model else None
            op["responses"][str(status)] = {"description": model if content is None else "OK"}
            if content:
                op["responses"][str(status)]["content"] = content
        else:
            op["responses"][str(status)] = {
                "description": model.__doc__.strip().splitlines()[0] if model.__doc__ else "OK",
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                    }
                },
            }
    for status, text in ERROR_STATUSES.items():
        if status == 401 and doc.auth is None:
            continue
        op["responses"].setdefault(str(status), {"description": text, "content": error_ref})
    op["responses"]["503"].setdefault("headers", RETRY_AFTER)
    op["responses"]["405"].setdefault("headers", ALLOW)
    if doc.rate_limit:
        op["description"] = f"Rate limited per tenant: {doc.rate_limit} (configurable)."
        for status, response in op["responses"].items():
            if status.startswith("2"):
                response["headers"] = RATE_LIMIT_HEADERS
        op["responses"]["429"]["headers"] = {**RATE_LIMIT_HEADERS, **RETRY_AFTER}
    op["responses"]["500"] = {
        "description": "Internal error (never a stack trace)",
        "content": error_ref,
    }
    return op


def _operation_id(route: Route) -> str:
    """The handler's name (create_session, list_sessions, …): unique, as build checks."""
    return route.name


DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>wagate API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code{background:#f4f4f4;padding:.1rem .3rem}h2{margin-top:2rem}.m{font-weight:bold;width:5rem;
display:inline-block}</style></head><body>
<h1>wagate API</h1>
<p>The machine-readable document is <a href="/v1/openapi.json">/v1/openapi.json</a>
(OpenAPI 3.1): load it into any OpenAPI tool (Swagger UI, Redoc, Postman) to try the calls.</p>
%s
</body></html>"""


def docs_page(document: dict[str, Any]) -> str:
    """A dependency-free HTML page (no CDN: the local stack runs offline)."""
    import html

    rows = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            rows.append(
                f"<p><span class='m'>{method.upper()}</span><code>{html.escape(path)}</code> "
                f"— {html.escape(op['summary'])}</p>"
            )
    return DOCS_PAGE % "\n".join(rows)


def render() -> str:
    import json

    from functions.api import router

    return json.dumps(build(router.routes), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
