"""The runner's HTTP server (aiohttp, as runner/app.py builds it) answers in the error model
even before a handler runs: malformed and oversized headers, unknown routes, wrong methods."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from devstack.processes import LOCALHOST, free_port
from runner import http_errors
from tests.integration.served import raw_exchange

pytestmark = pytest.mark.integration


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


REQUESTS = {
    "control character": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: a\x01b\r\n\r\n",
        400,
    ),
    "oversized header": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        None,
    ),
    "garbage": (b"GARBAGE\r\n\r\n", 400),
    "unknown route": (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    "wrong method": (b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_runner_server_answers_every_request_in_the_error_model(name: str) -> None:
    raw, status = REQUESTS[name]
    port = free_port()

    async def main() -> tuple[int, dict[str, str], bytes]:
        http_errors.install()
        app = web.Application(middlewares=[http_errors.json_http_errors])
        app.add_routes([web.get("/healthz", ok)])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, LOCALHOST, port).start()
        try:
            return await asyncio.to_thread(raw_exchange, port, raw)
        finally:
            await runner.cleanup()

    code, headers, body = asyncio.run(main())
    assert code >= 400 and (status is None or code == status), (code, body)
    assert headers["content-type"].startswith("application/json"), (headers, body)
    error: dict[str, Any] = json.loads(body)["error"]
    assert error["code"] and error["message"] and error["request_id"] == headers["x-request-id"]
    if name == "wrong method":
        assert "GET" in headers["allow"]
