"""JSON from the first byte: the answers gunicorn gives before the application runs (a
malformed request line or header, headers too large) in wagate's error model.

functions-framework serves through gunicorn with its own `BaseApplication`, which reads no
config file and no GUNICORN_CMD_ARGS and fixes the worker class, locally and in Cloud
Functions (2nd gen) alike, which runs the same `functions-framework --target` on
functions/main.py. The one hook both share is gunicorn's module-level `util.write_error`,
through which its worker's `handle_error` writes every such answer; functions/main.py replaces
it at import, in gunicorn's master before the workers fork (docs/decisions.md, "JSON from the
first byte").
"""

from __future__ import annotations

import secrets
import socket

from gunicorn import util

from wagate.http import raw_error_response


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error's signature; the reason and message gunicorn passes are
    dropped (they can quote the header's value)."""
    util.write_nonblock(sock, raw_error_response(status_int, secrets.token_hex(8)))


def install() -> None:
    util.write_error = write_json_error
