"""A webhook receiver on loopback for the tests: records every delivery (headers, body) and
answers 500 while `failing`, else the status its `answers` queue says (200 once it is empty)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(self) -> None:
        # path, headers, body, the status answered
        self.deliveries: list[tuple[str, dict[str, str], bytes, int]] = []
        self.answers: list[int] = []
        self.failing = False  # while set, every delivery is answered 500
        self.lock = threading.Lock()
        self.url = ""

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        """The events accepted (answered 2xx), parsed, in arrival order; only those posted to
        `path` when it is given."""
        with self.lock:
            return [
                json.loads(body)
                for p, _, body, status in self.deliveries
                if (path is None or p == path) and 200 <= status < 300
            ]

    def _answer(self) -> int:
        with self.lock:
            if self.failing:
                return 500
            return self.answers.pop(0) if self.answers else 200


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver._answer()
            with receiver.lock:
                receiver.deliveries.append((self.path, dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
