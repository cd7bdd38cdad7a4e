"""Drives the whole local system the way a user and a phone would: the api function over HTTP,
the simulator's control API as the phone and the network, the runner as a process to kill."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from devstack.stack import Stack

T = TypeVar("T")
GENEROUS_LIMITS = {
    "sends_per_minute": 100_000,
    "session_creates_per_minute": 10_000,
    "qr_fetches_per_5_minutes": 10_000,
    "max_sessions": 10_000,
}


def eventually(check: Callable[[], T | None], timeout: float = 20.0, every: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


class System:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.api = httpx.Client(base_url=stack.url["api"], timeout=30)
        self.sim = httpx.Client(base_url=stack.url["simulator"], timeout=30)

    # ------------------------------------------------------------ tenants and sessions

    def tenant(self, name: str = "acme", **body: Any) -> dict[str, Any]:
        # Tests poll QR codes and send in bursts: far above the default per-tenant limits.
        limits = {**GENEROUS_LIMITS, **body.pop("limits", {})}
        response = self.api.post(
            "/v1/admin/tenants",
            json={"name": name, "limits": limits, **body},
            headers={"Authorization": f"Bearer {self.stack.admin_key}"},
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def call(self, method: str, path: str, key: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
        return self.api.request(method, path, headers=headers, **kw)

    def session(self, key: str, sid: str) -> dict[str, Any]:
        response = self.call("GET", f"/v1/sessions/{sid}", key)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def wait_state(self, key: str, sid: str, state: str, timeout: float = 30) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            current = self.session(key, sid)
            return current if current["state"] == state else None

        return eventually(reached, timeout)

    def paired_session(self, key: str, phone: str) -> dict[str, Any]:
        """Create a session, scan its QR with `phone`, wait until connected."""
        created = self.call("POST", "/v1/sessions", key, json={"name": phone})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        qr = eventually(lambda: self._qr(key, sid), timeout=30)
        scanned = self.sim.post("/control/scan", json={"qr": qr, "phone": phone})
        assert scanned.status_code == 200, scanned.text
        return self.wait_state(key, sid, "connected")

    def _qr(self, key: str, sid: str) -> str | None:
        response = self.call("GET", f"/v1/sessions/{sid}/qr", key, params={"format": "json"})
        return str(response.json()["code"]) if response.status_code == 200 else None

    # ------------------------------------------------------------ messages

    def send(self, key: str, sid: str, to: str, body: str, **extra: Any) -> dict[str, Any]:
        headers = extra.pop("headers", {})
        response = self.call(
            "POST",
            f"/v1/sessions/{sid}/messages",
            key,
            json={"to": to, "content": {"type": "text", "body": body}, **extra},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    def message(self, key: str, mid: str) -> dict[str, Any]:
        response = self.call("GET", f"/v1/messages/{mid}", key)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def wait_status(
        self, key: str, mid: str, statuses: tuple[str, ...], timeout: float = 30
    ) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def reached() -> dict[str, Any] | None:
            seen[:] = [self.message(key, mid)]
            return seen[0] if seen[0]["status"] in statuses else None

        try:
            return eventually(reached, timeout)
        except AssertionError:
            raise AssertionError(f"message never reached {statuses}: {seen}") from None

    def received(self, recipient: str) -> list[dict[str, Any]]:
        response = self.sim.get(f"/control/received/{recipient.lstrip('+')}")
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    def control(self, path: str, **body: Any) -> Any:
        response = self.sim.post(f"/control/{path}", json=body)
        assert response.status_code == 200, response.text
        return response.json()
