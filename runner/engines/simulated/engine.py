"""The simulated engine (wagate.ports.WhatsAppEngine): opens connections to one simulator over a
shared aiohttp ClientSession, and remembers per linked device how far its consumer got, so a
new connection of the device is not sent what was already handled."""

from __future__ import annotations

import aiohttp

from runner.engines.simulated.connection import SimulatedConnection
from runner.engines.simulated.media import download
from wagate.adapters import egress
from wagate.domain.events import MediaFetch

KEEPALIVE_S = 30.0  # SPEC §4
CONNECT_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 60.0


class SimulatedEngine:
    """Opens connections to one simulator. Pass an `http_session` to share a ClientSession with
    other code; it must allow unlimited connections (`TCPConnector(limit=0)`), because each
    websocket holds one. Without one, the engine makes its own on first use."""

    name = "simulator"

    def __init__(
        self,
        simulator_url: str,
        http_session: aiohttp.ClientSession | None = None,
        *,
        keepalive_s: float = KEEPALIVE_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        query_timeout_s: float = QUERY_TIMEOUT_S,
        egress_guard: egress.EgressGuard | None = None,
    ) -> None:
        base = simulator_url.rstrip("/")
        self.http_url = "http" + base[2:] if base.startswith("ws") else base  # its media host
        if base.startswith("http"):
            base = "ws" + base[len("http") :]
        self.ws_url = f"{base}/ws"
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.query_timeout_s = query_timeout_s
        # Link previews are fetched through it (runner/engines/link_preview.py), as on WhatsApp.
        self.egress_guard = egress_guard or egress.EgressGuard.strictest()
        self._http = http_session
        self._owns_http = http_session is None
        # Per linked device (keyed by its secret, unique per link): the last server sequence
        # number a consumer took. A new connection of the same device says so in its hello, so
        # frames already handled are not sent again.
        self.consumed: dict[str, int] = {}

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or (self._owns_http and self._http.closed):
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
            )
        return self._http

    def media_download(self, path: str) -> MediaFetch:
        """The download of a file on the simulator's media host (a message frame's `media`)."""

        async def fetch(limit: int) -> bytes:
            return await download(self.http(), f"{self.http_url}{path}", limit)

        return fetch

    def open(self, session_id: str, auth_state: bytes | None) -> SimulatedConnection:
        return SimulatedConnection(self, session_id, auth_state)

    async def aclose(self) -> None:
        """Close the ClientSession if the engine made it (the runner calls this at exit)."""
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None
