"""The egress guard: every outbound call made on a user's behalf (webhook deliveries, media
downloads) goes through it (SPEC §6 "Egress"; policy in wagate.domain.egress_policy).

How DNS rebinding is shut out: httpx's transport is wrapped so that, for every request and so
for every redirect hop, it resolves the host once, checks every address it got, and connects
to a checked address — the request is re-addressed to that IP while the Host header and the TLS
server name (SNI, certificate check) stay the URL's name. No second lookup happens between the
check and the connect. Keep-alive is off: httpcore pools connections by address, and a
connection opened (and its certificate checked) for one name must not carry another name's
request. `trust_env` is off so no environment proxy connects in the guard's place.

`check_url` is the API's early answer (400 with the field): it resolves names only when
private addresses are refused, and a name that does not resolve passes — the connect-time check
is the one that holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Sequence

import httpx

from wagate.config import Settings
from wagate.contracts import MAX_MEDIA_BYTES
from wagate.domain.egress_policy import (
    EgressPolicy,
    EgressRefused,
    IPAddress,
    normalized_host,
    parse_allow_hosts,
)
from wagate.errors import PermanentSendError, TransientSendError

Resolver = Callable[[str, int], Sequence[str]]

MAX_REDIRECTS = 3
MEDIA_TIMEOUT_S = 60.0  # the whole download, redirects included
WEBHOOK_TIMEOUT_S = 10.0  # the whole POST; the body of the answer is not read
API_RESOLVE_TIMEOUT_S = 2.0
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of `host`, in the system resolver's order (literals come back as is)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def literal_address(host: str) -> IPAddress | None:
    """`host` as an IP address when it is one in any form the C library accepts (127.1,
    2130706433, 0x7f.0.0.1 …), without a DNS lookup; None for a name."""
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0])) if infos else None


class EgressGuard:
    """The policy and the resolver together: which addresses a URL may be connected to."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolve = resolver

    @classmethod
    def strictest(cls) -> EgressGuard:
        """The default policy: what an engine given no guard fetches media through."""
        return cls(EgressPolicy())

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver = system_resolver) -> EgressGuard:
        policy = EgressPolicy(
            https_only=settings.env == "cloud",
            allow_private=settings.egress_allow_private,
            allow_hosts=parse_allow_hosts(settings.egress_allow_hosts),
        )
        return cls(policy, resolver)

    def addresses(self, url: httpx.URL, *, field: str = "url") -> list[str]:
        """Resolve `url`'s host once and check every address; raises EgressRefused."""
        host, port = host_of(url), url.port or default_port(url.scheme)
        self.policy.check_target(url.scheme, host, port, field=field)
        try:
            found = self.resolve(host, port)
        except (OSError, UnicodeError) as e:
            raise httpx.ConnectError(f"cannot resolve {host}: {e}") from e
        if not found:
            raise httpx.ConnectError(f"{host} has no address")
        for address in found:
            self.policy.check_address(host, port, ipaddress.ip_address(address), field=field)
        return list(found)

    def check_url(self, url: str, *, field: str) -> None:
        """The API's early check (advisory; the connect-time check holds). Raises EgressRefused
        for a malformed or refused URL."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as e:
            raise EgressRefused(f"the URL is not valid: {e}", field=field) from None
        host, port = host_of(parsed), parsed.port or default_port(parsed.scheme)
        self.policy.check_target(parsed.scheme, host, port, field=field)
        literal = literal_address(host)
        if literal is not None:
            self.policy.check_address(host, port, literal, field=field)
        elif not self.policy.allow_private and not self.policy.listed(host, port):
            for address in self._resolve_briefly(host, port):
                self.policy.check_address(host, port, ipaddress.ip_address(address), field=field)

    def _resolve_briefly(self, host: str, port: int) -> Sequence[str]:
        """The name's addresses, or none when it does not resolve within a short time."""
        result: list[Sequence[str]] = []

        def lookup() -> None:
            with contextlib.suppress(OSError, UnicodeError):
                result.append(self.resolve(host, port))

        worker = threading.Thread(target=lookup, name="egress-resolve", daemon=True)
        worker.start()
        worker.join(API_RESOLVE_TIMEOUT_S)
        return result[0] if result else ()

    def pinned(self, request: httpx.Request, address: str) -> httpx.Request:
        """`request` re-addressed to `address`, keeping its Host header and its TLS name."""
        extensions = dict(request.extensions)
        if request.url.scheme == "https" and literal_address(host_of(request.url)) is None:
            extensions["sni_hostname"] = host_of(request.url)
        return httpx.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )


def host_of(url: httpx.URL) -> str:
    """The host as it is resolved and connected to: IDNA-encoded (xn--…), normalized."""
    return normalized_host(url.raw_host.decode("ascii", errors="replace"))


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, connecting only to addresses the guard checked (each redirect hop
    passes through here again). The look-up runs in a thread."""

    def __init__(self, guard: EgressGuard, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False, limits=NO_KEEPALIVE)
        self.guard = guard

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        failure: httpx.ConnectError | None = None
        for address in await asyncio.to_thread(self.guard.addresses, request.url):
            try:
                return await super().handle_async_request(self.guard.pinned(request, address))
            except httpx.ConnectError as e:
                failure = e  # the next address of the name, as a browser would
        assert failure is not None
        raise failure


def post_json(
    guard: EgressGuard,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float = WEBHOOK_TIMEOUT_S,
) -> int:
    """One webhook POST through the guard (wagate.services.webhooks' Poster): the receiver's
    status, within `timeout_s` in all. Redirects are not followed (a 3xx is a failed delivery,
    as at Stripe and GitHub: a POST turned into a GET would lose the event). Network failures,
    the time limit and refusals surface as OSError, which the delivery retries; the reason is
    in the message. Runs its own event loop: the functions are synchronous."""
    try:
        return asyncio.run(_post(guard, url, body, headers, timeout_s))
    except EgressRefused as e:
        raise OSError(f"refused by the egress guard: {e.message}") from e
    except TimeoutError as e:
        raise OSError(f"the receiver did not answer within {timeout_s:g} s") from e
    except httpx.InvalidURL as e:
        raise OSError(f"the webhook URL is not valid: {e}") from e
    except httpx.HTTPError as e:
        raise OSError(str(e) or type(e).__name__) from e


async def _post(
    guard: EgressGuard, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> int:
    async with (
        asyncio.timeout(timeout_s),
        httpx.AsyncClient(
            transport=GuardedTransport(guard), timeout=timeout_s, trust_env=False
        ) as client,
        client.stream("POST", url, content=body, headers=headers) as response,
    ):
        return response.status_code  # the body is not read


async def fetch_media(
    url: str,
    guard: EgressGuard,
    *,
    limit: int = MAX_MEDIA_BYTES,
    timeout_s: float = MEDIA_TIMEOUT_S,
) -> bytes:
    """The bytes at a media URL, for an engine to send: through the guard, at most 3 redirects
    (each hop checked), at most `limit` bytes (streamed; aborted past it), within `timeout_s`.
    Raises PermanentSendError (refused, 4xx, too large, too many redirects) or
    TransientSendError (network, timeout, 5xx)."""
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(
                transport=GuardedTransport(guard),
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                timeout=timeout_s,
                trust_env=False,
            ) as client,
            client.stream("GET", url) as response,
        ):
            if 400 <= response.status_code < 500:
                raise PermanentSendError(
                    f"the media URL answered HTTP {response.status_code}", field="content"
                )
            if response.status_code >= 300:
                raise TransientSendError(f"the media URL answered HTTP {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _too_large(limit)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            return b"".join(chunks)
    except EgressRefused as e:
        raise PermanentSendError(f"the media URL is refused: {e.message}", field="content") from e
    except httpx.TooManyRedirects as e:
        raise PermanentSendError(
            f"the media URL redirects more than {MAX_REDIRECTS} times", field="content"
        ) from e
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
        raise PermanentSendError(f"the media URL is not valid: {e}", field="content") from e
    except TimeoutError as e:
        raise TransientSendError(f"the media download took longer than {timeout_s:g} s") from e
    except httpx.HTTPError as e:
        raise TransientSendError(f"cannot download the media: {e}") from e


def _too_large(limit: int) -> PermanentSendError:
    return PermanentSendError(
        f"the media file is larger than {limit // (1024 * 1024)} MB", field="content"
    )
