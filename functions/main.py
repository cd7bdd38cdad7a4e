"""Cloud Functions (2nd gen) entry points: `api` and `sweeper`.

Thin on purpose: the handlers live in functions.api / functions.sweeper, the logic in wagate.
"""

from __future__ import annotations

import flask
import functions_framework

from functions.api import router as api_router
from functions.sweeper import router as sweeper_router


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return api_router.dispatch(request)


@functions_framework.http
def sweeper(request: flask.Request) -> flask.Response:
    return sweeper_router.dispatch(request)
