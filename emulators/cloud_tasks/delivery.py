"""One dispatch attempt over HTTP: the request Cloud Tasks would send, and what came of it.

All attempts share one aiohttp ClientSession with a large keep-alive pool; the dispatch
deadline is the request's total timeout. Redirects are followed (not counted as attempts).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import yarl

from emulators.cloud_tasks.errors import Code, code_for_http_status

log = logging.getLogger(__name__)

# Cloud Tasks sets no Content-Type of its own: only the task's headers say what the body is.
_SKIP_AUTO_HEADERS = frozenset({"Content-Type"})


# Tasks of a queue mostly share a handful of URLs and deadlines: parse and build them once.
@functools.lru_cache(maxsize=4096)
def _parsed_url(url: str) -> yarl.URL:
    return yarl.URL(url)


@functools.lru_cache(maxsize=256)
def _timeout(deadline_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=deadline_s)


@dataclass(frozen=True)
class Delivery:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    deadline_s: float


@dataclass(frozen=True)
class Outcome:
    http_status: int | None  # None: no response (timeout, connection failure)
    code: Code
    message: str

    @property
    def succeeded(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300

    @classmethod
    def response(cls, status: int) -> Outcome:
        code = code_for_http_status(status)
        return cls(status, code, f"{code.name}({code.number}): HTTP status code {status}")


class HttpSender:
    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, delivery: Delivery) -> Outcome:
        if self._session is None:
            raise RuntimeError("HttpSender.start() was not awaited")
        try:
            async with self._session.request(
                delivery.method,
                _parsed_url(delivery.url),
                headers=delivery.headers,
                data=delivery.body or None,
                timeout=_timeout(delivery.deadline_s),
                skip_auto_headers=_SKIP_AUTO_HEADERS,
            ) as response:
                await response.read()
                return Outcome.response(response.status)
        except TimeoutError:
            return Outcome(None, Code.DEADLINE_EXCEEDED, "dispatch deadline exceeded")
        except (aiohttp.ClientError, OSError, ValueError) as e:
            log.debug("dispatch to %s failed: %r", delivery.url, e)
            return Outcome(None, Code.UNAVAILABLE, f"target unreachable: {type(e).__name__}")
