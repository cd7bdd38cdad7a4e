"""Cloud Functions (2nd gen) entry points: `api` and `sweeper`.

Thin on purpose: the handlers live in functions.api / functions.sweeper, the logic in wagate.
"""

from __future__ import annotations

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

from functions import server
from functions.api import router as api_router
from functions.sweeper import router as sweeper_router
from functions.web import framework_error

# functions-framework runs this file inside the app context of the Flask app it is building:
# requests its catch-all route refuses then answer in the error model too. (A plain import, as
# by the OpenAPI generator, has no app to configure.)
if flask.has_app_context():
    flask.current_app.register_error_handler(HTTPException, framework_error)
# What gunicorn itself refuses (malformed or oversized headers) answers in it too.
server.install()


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return api_router.dispatch(request)


@functions_framework.http
def sweeper(request: flask.Request) -> flask.Response:
    return sweeper_router.dispatch(request)
