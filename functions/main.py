"""Cloud Functions (2nd gen) entry points: `api` and `sweeper`.

Thin on purpose: the handlers live in functions.api / functions.sweeper, the logic in wagate.
"""

from __future__ import annotations

import flask
import functions_framework

from functions import server
from functions.api import router as api_router
from functions.sweeper import router as sweeper_router
from functions.web import Router

ROUTERS: dict[str, Router] = {"api": api_router, "sweeper": sweeper_router}

# functions-framework runs this file inside the app context of the Flask app it builds for the
# target function (named after it): requests go from its server to that function's router
# directly (functions/server.py). A plain import, as by the OpenAPI generator, has no app.
if flask.has_app_context() and flask.current_app.name in ROUTERS:
    server.serve_directly(flask.current_app, ROUTERS[flask.current_app.name])
# What gunicorn itself refuses (malformed or oversized headers) answers in the error model too.
server.install()


# functions-framework requires the target to be a function of this file (and calls it when the
# router does not serve directly: an app whose context did not run this file).
@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return api_router.dispatch(request)


@functions_framework.http
def sweeper(request: flask.Request) -> flask.Response:
    return sweeper_router.dispatch(request)
