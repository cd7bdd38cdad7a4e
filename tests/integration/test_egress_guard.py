"""The egress guard on real sockets, loopback only: local HTTP servers stand in for media hosts
and webhook receivers. Private addresses are refused (as in the cloud) and a test-only
allow-list lets exactly one loopback host:port through; names resolve through an injected
resolver to loopback literals. No request leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from wagate.adapters.egress import (
    MAX_REDIRECTS,
    EgressGuard,
    GuardedTransport,
    fetch_media,
    post_json,
)
from wagate.contracts import MAX_MEDIA_BYTES
from wagate.domain.egress_policy import EgressPolicy, parse_allow_hosts
from wagate.errors import PermanentSendError, TransientSendError

pytestmark = pytest.mark.integration

Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class LocalServer:
    """A loopback HTTP server whose paths are routes; it records every request it got."""

    routes: dict[str, Route] = field(default_factory=dict)
    got: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    port: int = 0
    wrap: Callable[[ssl.SSLContext], None] = lambda tls: None  # serve TLS from now on

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def servers() -> Iterator[Callable[[], LocalServer]]:
    started: list[ThreadingHTTPServer] = []

    def start() -> LocalServer:
        server = LocalServer()

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                server.got.append((self.command, self.path, dict(self.headers)))
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                route(self)

            do_GET = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        http.daemon_threads = True
        server.port = http.server_address[1]

        def wrap(tls: ssl.SSLContext) -> None:
            http.socket = tls.wrap_socket(http.socket, server_side=True)

        server.wrap = wrap
        threading.Thread(target=http.serve_forever, args=(0.05,), daemon=True).start()
        started.append(http)
        return server

    yield start
    for http in started:
        http.shutdown()
        http.server_close()


def body(data: bytes, status: int = 200) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        h.send_response(status)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return route


def redirect(location: str, status: int = 302) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


def endless(chunk: bytes, pause_s: float = 0.0) -> Route:
    """A body without Content-Length that goes on until the client hangs up."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            while True:
                h.wfile.write(chunk)
                if pause_s:
                    time.sleep(pause_s)
        except OSError:
            pass  # the guard aborted the download

    return route


def guard_for(*listed: LocalServer, resolver: Any = None) -> EgressGuard:
    """The cloud's address rule (no private addresses) over http, with `listed` let through."""
    policy = EgressPolicy(
        https_only=False,
        allow_private=False,
        allow_hosts=parse_allow_hosts(",".join(f"127.0.0.1:{s.port}" for s in listed)),
    )
    return EgressGuard(policy, resolver) if resolver else EgressGuard(policy)


def fetch(url: str, guard: EgressGuard, **options: Any) -> bytes:
    return asyncio.run(fetch_media(url, guard, **options))


def test_a_listed_loopback_host_is_fetched_and_an_unlisted_one_is_refused(
    servers: Callable[[], LocalServer],
) -> None:
    listed, other = servers(), servers()
    listed.routes["/a.jpg"] = body(b"jpeg bytes")
    other.routes["/a.jpg"] = body(b"must not be read")
    guard = guard_for(listed)
    assert fetch(f"{listed.origin}/a.jpg", guard) == b"jpeg bytes"
    with pytest.raises(PermanentSendError, match="loopback") as refused:
        fetch(f"{other.origin}/a.jpg", guard)
    assert refused.value.field == "content"
    assert other.got == []


def test_a_redirect_to_a_refused_port_is_not_followed(servers: Callable[[], LocalServer]) -> None:
    """The first hop is allowed; the second points at a loopback port that is not listed (as
    a runner's or an emulator's port would be): it is refused before any connection."""
    listed, internal = servers(), servers()
    internal.routes["/secret"] = body(b"internal data")
    listed.routes["/start"] = redirect(f"{internal.origin}/secret")
    listed.routes["/v6"] = redirect(f"http://[::ffff:127.0.0.1]:{internal.port}/secret")
    listed.routes["/meta"] = redirect("http://169.254.169.254/computeMetadata/v1/")
    guard = guard_for(listed)
    for path in ("/start", "/v6", "/meta"):
        with pytest.raises(PermanentSendError, match="refused"):
            fetch(f"{listed.origin}{path}", guard)
    assert internal.got == []
    assert [p for _, p, _ in listed.got] == ["/start", "/v6", "/meta"]


def test_at_most_three_redirects_are_followed(servers: Callable[[], LocalServer]) -> None:
    server = servers()
    for hop in range(MAX_REDIRECTS + 1):
        server.routes[f"/r{hop}"] = redirect(f"/r{hop + 1}")
    server.routes[f"/r{MAX_REDIRECTS + 1}"] = body(b"the end")
    guard = guard_for(server)
    assert fetch(f"{server.origin}/r1", guard) == b"the end"  # three redirects: fine
    with pytest.raises(PermanentSendError, match="redirects more than 3"):
        fetch(f"{server.origin}/r0", guard)  # four redirects


def test_a_body_past_16_mb_is_aborted_while_streaming(servers: Callable[[], LocalServer]) -> None:
    server = servers()
    server.routes["/endless"] = endless(b"x" * 65536)
    server.routes["/declared"] = body(b"y" * (MAX_MEDIA_BYTES + 1))
    server.routes["/exact"] = body(b"z" * MAX_MEDIA_BYTES)
    guard = guard_for(server)
    with pytest.raises(PermanentSendError, match="larger than 16 MB"):
        fetch(f"{server.origin}/endless", guard)
    with pytest.raises(PermanentSendError, match="larger than 16 MB"):
        fetch(f"{server.origin}/declared", guard)
    assert len(fetch(f"{server.origin}/exact", guard)) == MAX_MEDIA_BYTES


def test_a_slow_body_is_cut_at_the_time_limit(servers: Callable[[], LocalServer]) -> None:
    server = servers()
    server.routes["/drip"] = endless(b"x", pause_s=0.05)  # never idle long enough to time out
    started = time.monotonic()
    with pytest.raises(TransientSendError, match="longer than 1 s"):
        fetch(f"{server.origin}/drip", guard_for(server), timeout_s=1.0)
    assert time.monotonic() - started < 5


def test_the_connection_goes_to_the_checked_address_with_the_name_kept(
    servers: Callable[[], LocalServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name is resolved once, by the guard; the socket is opened to that
    address. Any second lookup of the name (by httpx or the socket layer) fails the test."""
    server = servers()
    server.routes["/m.png"] = body(b"png")
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    real = socket.getaddrinfo

    def numeric_only(host: Any, *args: Any, **kw: Any) -> Any:
        if "rebind.test" in repr(host):
            raise AssertionError(f"{host} was resolved again after the check")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    policy = EgressPolicy(
        https_only=False, allow_hosts=parse_allow_hosts(f"rebind.test:{server.port}")
    )
    url = f"http://rebind.test:{server.port}/m.png"
    assert fetch(url, EgressGuard(policy, resolver)) == b"png"
    assert asked == ["rebind.test"]
    assert server.got[0][2]["Host"] == f"rebind.test:{server.port}"


def test_a_name_that_resolves_to_a_refused_address_is_not_connected(
    servers: Callable[[], LocalServer],
) -> None:
    server = servers()
    server.routes["/m.png"] = body(b"png")
    guard = EgressGuard(EgressPolicy(https_only=False), lambda host, port: ["127.0.0.1"])
    with pytest.raises(PermanentSendError, match="loopback"):
        fetch(f"http://media.test:{server.port}/m.png", guard)
    assert server.got == []


def test_http_is_refused_when_only_https_is_allowed(servers: Callable[[], LocalServer]) -> None:
    server = servers()
    server.routes["/m.png"] = body(b"png")
    policy = EgressPolicy(
        https_only=True, allow_hosts=parse_allow_hosts(f"127.0.0.1:{server.port}")
    )
    with pytest.raises(PermanentSendError, match="https"):
        fetch(f"{server.origin}/m.png", EgressGuard(policy))
    assert server.got == []


def test_webhook_posts_go_through_the_guard_and_do_not_follow_redirects(
    servers: Callable[[], LocalServer],
) -> None:
    receiver, internal = servers(), servers()
    receiver.routes["/hook"] = body(b"ok")
    receiver.routes["/moved"] = redirect(f"{internal.origin}/hook", status=307)
    internal.routes["/hook"] = body(b"ok")
    guard = guard_for(receiver)
    headers = {"Content-Type": "application/json"}
    assert post_json(guard, f"{receiver.origin}/hook", b'{"a":1}', headers) == 200
    assert post_json(guard, f"{receiver.origin}/moved", b"{}", headers) == 307
    with pytest.raises(OSError, match="refused by the egress guard"):
        post_json(guard, f"{internal.origin}/hook", b"{}", headers)
    with pytest.raises(OSError, match="refused by the egress guard"):
        post_json(guard, f"http://localhost:{internal.port}/hook", b"{}", headers)
    assert internal.got == []
    assert [(m, p) for m, p, _ in receiver.got] == [("POST", "/hook"), ("POST", "/moved")]


def test_a_webhook_receiver_that_answers_slowly_is_cut_at_the_time_limit(
    servers: Callable[[], LocalServer],
) -> None:
    def dripping_headers(h: BaseHTTPRequestHandler) -> None:
        h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            h.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(400):  # never idle long enough for a per-read timeout
                h.wfile.write(b"X-Slow: 1\r\n")
                h.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    receiver = servers()
    receiver.routes["/hook"] = dripping_headers
    started = time.monotonic()
    with pytest.raises(OSError, match="within 1 s"):
        post_json(guard_for(receiver), f"{receiver.origin}/hook", b"{}", {}, timeout_s=1.0)
    assert time.monotonic() - started < 5


def test_a_redirect_to_another_scheme_fails_the_media_for_good(
    servers: Callable[[], LocalServer],
) -> None:
    server = servers()
    server.routes["/ftp"] = redirect(f"ftp://127.0.0.1:{server.port}/a.jpg")
    with pytest.raises(PermanentSendError):
        fetch(f"{server.origin}/ftp", guard_for(server))


def test_a_stored_webhook_url_that_is_not_valid_is_an_os_error() -> None:
    for url in ("http://[::1/x", "ftp://127.0.0.1/x", "http:///x"):
        with pytest.raises(OSError):
            post_json(guard_for(), url, b"{}", {})


def test_an_unreachable_webhook_receiver_is_an_os_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        policy = EgressPolicy(https_only=False, allow_hosts=parse_allow_hosts(f"127.0.0.1:{port}"))
        with pytest.raises(OSError):
            post_json(EgressGuard(policy), f"http://127.0.0.1:{port}/hook", b"{}", {})


def test_the_whatsmeow_engine_downloads_media_urls_through_the_guard(
    servers: Callable[[], LocalServer], tmp_path: Any
) -> None:
    """The real engine's media download (no host process starts: only fetch_media runs).
    Without a guard of its own it uses the strictest policy: https and public addresses."""
    from runner.engines.whatsmeow import WhatsmeowEngine

    listed, internal = servers(), servers()
    listed.routes["/a.jpg"] = body(b"jpeg")
    listed.routes["/hop"] = redirect(f"{internal.origin}/a.jpg")
    internal.routes["/a.jpg"] = body(b"internal")
    strict = WhatsmeowEngine(tmp_path / "strict")
    with pytest.raises(PermanentSendError, match="refused"):
        asyncio.run(strict.fetch_media("ses_1", {"url": f"{listed.origin}/a.jpg"}))
    engine = WhatsmeowEngine(tmp_path / "guarded", egress_guard=guard_for(listed))
    assert asyncio.run(engine.fetch_media("ses_1", {"url": f"{listed.origin}/a.jpg"})) == b"jpeg"
    with pytest.raises(PermanentSendError, match="refused"):
        asyncio.run(engine.fetch_media("ses_1", {"url": f"{listed.origin}/hop"}))
    assert internal.got == []


def _certificate(name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate (PEM) for `name` and its key: generated per test."""
    from datetime import timedelta

    from cryptography import x509

    from devstack.tls import self_signed

    return self_signed(x509.DNSName(name), valid=timedelta(hours=1))


def test_https_keeps_the_name_for_sni_and_the_certificate_while_connecting_to_the_ip(
    servers: Callable[[], LocalServer], tmp_path: Any
) -> None:
    """The request goes to 127.0.0.1 (the checked address), yet TLS names media.test: the
    server sees it as SNI and the client verifies the certificate against it."""
    cert_pem, key_pem = _certificate("media.test")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server = servers()
    server.routes["/m.png"] = body(b"png over tls")
    seen_sni: list[str | None] = []
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    tls.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    server.wrap(tls)
    trusted = ssl.create_default_context(cadata=cert_pem.decode())

    async def get(name: str) -> httpx.Response:
        listed = parse_allow_hosts(f"{name}:{server.port}")
        guard = EgressGuard(
            EgressPolicy(https_only=True, allow_hosts=listed), lambda host, port: ["127.0.0.1"]
        )
        transport = GuardedTransport(guard, verify=trusted)
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            return await client.get(f"https://{name}:{server.port}/m.png")

    answer = asyncio.run(get("media.test"))
    assert answer.status_code == 200 and answer.content == b"png over tls"
    assert seen_sni == ["media.test"]
    assert server.got[0][2]["Host"] == f"media.test:{server.port}"
    # A certificate for another name fails verification: the name really is checked.
    with pytest.raises(httpx.ConnectError, match=r"certificate|hostname"):
        asyncio.run(get("other.test"))
