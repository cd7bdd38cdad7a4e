"""Every answer of the runner's HTTP server in wagate's error model: aiohttp's own 404/405
(with `Allow`), and what its protocol handler refuses before any handler runs (a malformed
request line or header, headers too large), which it renders as text/plain or HTML.

aiohttp builds that early answer in `RequestHandler.handle_error`, called straight from its
protocol loop with no middleware around it, and `AppRunner` takes no handler class: replacing
the method at import (`install`) is the one hook.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web, web_protocol
from aiohttp.web_request import BaseRequest

from wagate import errors
from wagate.http import pre_app_error, render_error


def _json_error(
    error: errors.WagateError | Exception, headers: dict[str, str] | None = None
) -> web.Response:
    request_id = secrets.token_hex(8)
    status, body, error_headers = render_error(error, request_id)
    return web.Response(
        status=status,
        body=body,
        headers={**error_headers, **(headers or {}), "X-Request-Id": request_id},
    )


@web.middleware
async def json_http_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's routing answers (404, 405) as JSON errors."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as e:
        allowed = ", ".join(sorted(e.allowed_methods))
        error = errors.MethodNotAllowed(
            f"{request.method} is not allowed here (allowed: {allowed})", field="method"
        )
        return _json_error(error, {"Allow": allowed})
    except web.HTTPNotFound:
        return _json_error(errors.NotFound(f"no route for {request.path}", field="path"))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _json_error(pre_app_error(e.status))


def _handle_error(
    self: web_protocol.RequestHandler,
    request: BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    if status >= 500:
        self.log_exception("Error handling request", exc_info=exc)
    if request.writer.output_size > 0:  # as aiohttp: the answer has begun, nothing to add
        raise ConnectionError("response already sent, cannot send the error")
    response = _json_error(pre_app_error(status))
    response.force_close()
    return response


def install() -> None:
    web_protocol.RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
