"""What functions-framework's server runs, made cheaper and answering in wagate's error model
from the first byte.

- `serve_directly`: each request goes from gunicorn straight to the function's Router, past
  the Flask app functions-framework builds around the function (its request context, its
  catch-all route, its view wrapper, its after-request hook). That machinery cost ~80 µs a
  request on an idle core and 0.3 to 0.5 ms on a loaded one (docs/benchmarks.md, accept-latency),
  and did nothing the Router does not do itself: every path, method and error is already the
  Router's. Both places that run functions/main.py — `functions-framework --target` locally
  and Cloud Functions (2nd gen), which runs the same command — load it inside that Flask app's
  context, so main.py replaces the app's `wsgi_app` there (Flask's documented way to wrap or
  replace it).
- `settle_heap`: what lives as long as the process (the imported libraries, the gateway's
  clients) is moved out of the garbage collector's sight (`gc.freeze`), so its collections
  walk only what requests allocate. A full collection walked the ~110,000 objects of the
  imported libraries in 30-70 ms, stalling whichever request was running; the younger
  collections that sat in the accept's p99 cost 0.6-1 ms each (docs/benchmarks.md, fifteenth
  session). The usual practice for a server that forks its workers after loading its code.
- `install`: the answers gunicorn gives before the application runs (a malformed request line
  or header, headers too large). functions-framework serves through gunicorn with its own
  `BaseApplication`, which reads no config file and no GUNICORN_CMD_ARGS and fixes the worker
  class. The one hook is gunicorn's module-level `util.write_error`, through which its worker's
  `handle_error` writes every such answer; main.py replaces it at import, in gunicorn's master
  before the workers fork (docs/decisions.md, "JSON from the first byte").
"""

from __future__ import annotations

import gc
import secrets
import socket

import flask
from gunicorn import util

from functions.web import Router
from wagate.http import raw_error_response


def serve_directly(app: flask.Flask, router: Router) -> None:
    """Requests to `app` go to `router` as a plain WSGI application."""
    app.wsgi_app = router.wsgi_app  # type: ignore[method-assign]


def settle_heap() -> None:
    """Collect once, then leave everything alive now out of later collections."""
    gc.collect()
    gc.freeze()


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error's signature; the reason and message gunicorn passes are
    dropped (they can quote the header's value)."""
    util.write_nonblock(sock, raw_error_response(status_int, secrets.token_hex(8)))


def install() -> None:
    util.write_error = write_json_error
