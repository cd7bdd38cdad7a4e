"""Engines under the contract, one factory each. To put another engine adapter under the same
suite, write a factory (an async context manager yielding an `EngineUnderTest` whose `network`
drives that engine's WhatsApp side) and append it to ENGINE_FACTORIES.

An engine whose WhatsApp side cannot be driven here (the real one: no phone, no WhatsApp
servers) is listed in OFFLINE_ONLY: it runs the tests that need no network, and the tests marked
`needs_whatsapp` are skipped for it, with a pointer to the manual test on a real phone
(docs/engines.md). Factories take `unreachable=True` to build an engine whose server refuses."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest

from runner.engines.baileys import BaileysEngine
from runner.engines.simulated import SimulatedEngine
from runner.engines.whatsmeow import WhatsmeowEngine
from simulator.testkit import ControlClient
from tests.engine_contract.baileys_kit import FAKE_CANNOT, FakeNetwork, start_fake
from tests.engine_contract.whatsmeow_kit import UNREACHABLE_PROXY
from tests.simulator.harness import simulator_url
from wagate.ports import WhatsAppEngine


class Network(Protocol):
    """What the phone, the contacts and WhatsApp's servers do in a contract test."""

    not_on_whatsapp: str  # a well-formed number that has no WhatsApp account

    async def scan(self, qr: str, phone: str) -> None: ...

    async def confirm_pairing_code(self, code: str, phone: str) -> None: ...

    async def inbound(self, to_phone: str, sender: str, text: str, wa_id: str) -> None: ...

    async def inbound_media(
        self, to_phone: str, sender: str, wa_id: str, file: MediaSample
    ) -> None:
        """A contact sends a media message (`file.kind`: image, video, audio, voice, document,
        sticker) whose file the engine must download from the network's media host."""

    async def received_ids(self, recipient: str) -> list[str]:
        """Every message id the recipient got, in order (duplicates would repeat)."""

    async def received_messages(self, recipient: str) -> list[dict[str, Any]]:
        """What the recipient got, in order: {id, kind, content}; an edit's content is
        {message_id, body}, a revoke's {message_id} (test_chat_actions_contract.py)."""

    async def chat_events(self, recipient: str) -> list[dict[str, Any]]:
        """The read receipts ({kind: read, ids}) and presences ({kind: presence, state}) the
        recipient saw of the account, in order."""

    async def inbound_change(
        self, to_phone: str, sender: str, kind: str, content: dict[str, Any], wa_id: str
    ) -> None:
        """A contact edits (`edit`), revokes (`revoke`) or reacts (`reaction`) to a message."""

    async def disconnect(self, jid: str, reason: int, *, abrupt: bool = False) -> None:
        """The server closes the device's socket with this reason (abrupt: no close frame)."""

    async def black_hole(self, jid: str, seconds: float) -> None:
        """The socket goes silent without closing: only keep-alive can notice."""

    async def withhold_acks(self, phone: str, seconds: float) -> None:
        """Messages are delivered but server acks are late by `seconds` (0 releases them)."""

    async def rate_limit(self, phone: str, per_second: float | None, burst: int) -> None: ...

    async def receipt_delays(self, delivered_ms: float, read_ms: float) -> None: ...

    async def create_group(self, owner: str, subject: str, members: list[str]) -> str:
        """A group made on `owner`'s phone with `members` (phone numbers); its jid."""

    async def change_participants(
        self, group: str, action: str, participants: list[str], *, by: str | None
    ) -> None:
        """Someone on a phone changes the group: `by` an admin, or None (joined or left)."""


@dataclass(frozen=True)
class MediaSample:
    """A file a contact sends in a contract test."""

    kind: str
    data: bytes
    mime_type: str
    filename: str | None = None
    caption: str | None = None

    def content(self) -> dict[str, Any]:
        return {k: v for k, v in (("caption", self.caption), ("filename", self.filename)) if v}


@dataclass
class EngineUnderTest:
    name: str
    engine: WhatsAppEngine
    network: Network | None  # None: WhatsApp's side cannot be driven here


EngineFactory = Callable[..., AbstractAsyncContextManager[EngineUnderTest]]


@asynccontextmanager
async def _under_test(
    name: str, engine: WhatsAppEngine, network: Network | None
) -> AsyncIterator[EngineUnderTest]:
    try:
        yield EngineUnderTest(name, engine, network)
    finally:
        await engine.aclose()


class SimulatorNetwork:
    """Network for engines that talk to the simulator: its control API."""

    not_on_whatsapp = "+99955501234"

    def __init__(self, control: ControlClient) -> None:
        self.control = control

    async def scan(self, qr: str, phone: str) -> None:
        await self.control.scan(qr, phone)

    async def confirm_pairing_code(self, code: str, phone: str) -> None:
        await self.control.confirm_pair_code(code, phone)

    async def inbound(
        self, to_phone: str, sender: str, text: str, wa_id: str, *, addressing: str = "pn"
    ) -> None:
        await self.control.inbound(
            to_phone, sender, {"body": text}, wa_id=wa_id, addressing=addressing
        )

    @staticmethod
    def lid_of(phone: str) -> str:
        """The LID the simulator gives a number (simulator/PROTOCOL.md)."""
        return f"{100_000_000_000_000 + int(phone.removeprefix('+')) * 7}@lid"

    async def inbound_media(
        self, to_phone: str, sender: str, wa_id: str, file: MediaSample
    ) -> None:
        media = {"data": base64.b64encode(file.data).decode(), "mime_type": file.mime_type}
        if file.filename:
            media["filename"] = file.filename
        await self.control.inbound(
            to_phone, sender, file.content(), kind=file.kind, wa_id=wa_id, media=media
        )

    async def received_ids(self, recipient: str) -> list[str]:
        return [m["id"] for m in await self.control.received(recipient)]

    async def received_messages(self, recipient: str) -> list[dict[str, Any]]:
        got = await self.control.received(recipient)
        return [{"id": m["id"], "kind": m["kind"], "content": m["content"]} for m in got]

    async def chat_events(self, recipient: str) -> list[dict[str, Any]]:
        return await self.control.chat_events(recipient)

    async def inbound_change(
        self, to_phone: str, sender: str, kind: str, content: dict[str, Any], wa_id: str
    ) -> None:
        await self.control.inbound(to_phone, sender, content, kind=kind, wa_id=wa_id)

    async def disconnect(self, jid: str, reason: int, *, abrupt: bool = False) -> None:
        assert await self.control.drop(reason, jid=jid, abrupt=abrupt) == 1

    async def black_hole(self, jid: str, seconds: float) -> None:
        await self.control.freeze(seconds, jid=jid)

    async def withhold_acks(self, phone: str, seconds: float) -> None:
        await self.control.stall(seconds, phone=phone)

    async def rate_limit(self, phone: str, per_second: float | None, burst: int) -> None:
        await self.control.rate_limit(phone, per_second, burst)

    async def receipt_delays(self, delivered_ms: float, read_ms: float) -> None:
        await self.control.config(receipt_delay_ms=delivered_ms, read_delay_ms=read_ms)

    async def create_group(self, owner: str, subject: str, members: list[str]) -> str:
        return await self.control.create_group(owner, subject, members)

    async def change_participants(
        self, group: str, action: str, participants: list[str], *, by: str | None
    ) -> None:
        results = await self.control.change_participants(group, action, participants, by)
        assert all(r["status"] == 200 for r in results), results

    # ------------------------------------------------------------ content kinds

    async def seen(self, recipient: str) -> list[dict[str, Any]]:
        """What the recipient's handset shows of each message, in the fake's terms
        (emulators/whatsapp/content.mjs): the simulator forwards media by reference, so the
        handset downloads it here, as a phone downloads from WhatsApp's media server."""
        return [await self._shown(m) for m in await self.control.received(recipient)]

    async def _shown(self, message: dict[str, Any]) -> dict[str, Any]:
        kind, content = message["kind"], message["content"]
        shown: dict[str, Any] = {"id": message["id"], "kind": kind}
        if kind == "text":
            mentions = content.get("mentions") or []
            shown |= {"body": content["body"], "mentions": [_user_jid(m) for m in mentions]}
            if preview := content.get("preview"):
                thumbnail = base64.b64decode(preview.get("thumbnail_b64", ""))
                shown["preview"] = {
                    "title": preview["title"],
                    "description": preview.get("description"),
                    "url": preview["url"],
                    "thumbnail_bytes": len(thumbnail),
                }
        elif kind == "poll":
            shown |= {k: content[k] for k in ("question", "options", "selectable_count")}
        elif "url" in content:
            async with self.control.http.get(content["url"]) as r:
                data = await r.read()
            shown |= {"mime_type": content.get("mime_type"), "size": len(data)}
            shown["sha256"] = hashlib.sha256(data).hexdigest()
        return shown

    async def vote(
        self,
        to_phone: str,
        voter: str,
        poll_id: str,
        options: list[str],
        wa_id: str,
        *,
        addressing: str = "pn",
    ) -> None:
        await self.control.vote(
            to_phone, voter, poll_id, options, wa_id=wa_id, addressing=addressing
        )


def _user_jid(address: str) -> str:
    return address if "@" in address else f"{address.removeprefix('+')}@s.whatsapp.net"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def simulated_engine(simulator_url: str) -> EngineFactory:
    @asynccontextmanager
    async def factory(
        *, unreachable: bool = False, **options: Any
    ) -> AsyncIterator[EngineUnderTest]:
        async with aiohttp.ClientSession() as http:
            control = ControlClient(simulator_url, http)
            await control.reset()
            url = _closed_port_url() if unreachable else simulator_url
            engine = SimulatedEngine(url, **options)
            async with _under_test("simulated", engine, SimulatorNetwork(control)) as under_test:
                yield under_test

    return factory


def whatsmeow_engine(store_dir: Path) -> EngineFactory:
    """The real library in its host process. Its server is always a closed local proxy port, so
    nothing here ever talks to WhatsApp, even on a machine that could."""

    @asynccontextmanager
    async def factory(
        *, unreachable: bool = True, **options: Any
    ) -> AsyncIterator[EngineUnderTest]:
        engine = WhatsmeowEngine(store_dir, proxy=UNREACHABLE_PROXY, **options)
        async with _under_test("whatsmeow", engine, None) as under_test:
            yield under_test

    return factory


def baileys_engine(fake_url: str) -> EngineFactory:
    """The real library in Node workers against the WhatsApp-protocol fake (emulators/whatsapp)."""

    @asynccontextmanager
    async def factory(
        *, unreachable: bool = False, **options: Any
    ) -> AsyncIterator[EngineUnderTest]:
        async with aiohttp.ClientSession() as http:
            network = FakeNetwork(fake_url, http)
            await network.reset()
            url = _closed_port_url().replace("http", "ws") if unreachable else network.ws_url
            engine = BaileysEngine(url, sync_history=False, media_url=network.url, **options)
            async with _under_test("baileys", engine, network) as under_test:
                yield under_test

    return factory


@pytest.fixture(scope="session")
def whatsapp_fake_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One WhatsApp-protocol fake for the whole test run (each test resets it)."""
    with start_fake(tmp_path_factory.mktemp("whatsapp-fake")) as url:
        yield url


__all__ = ["ENGINE_FACTORIES", "OFFLINE_ONLY", "EngineUnderTest", "Network", "simulator_url"]

ENGINE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], EngineFactory]] = {
    "baileys": lambda request: baileys_engine(request.getfixturevalue("whatsapp_fake_url")),
    "simulated": lambda request: simulated_engine(request.getfixturevalue("simulator_url")),
    "whatsmeow": lambda request: whatsmeow_engine(
        request.getfixturevalue("tmp_path") / "whatsmeow"
    ),
}
OFFLINE_ONLY = {"whatsmeow"}


@pytest.fixture(params=sorted(ENGINE_FACTORIES))
def engine_factory(request: pytest.FixtureRequest) -> EngineFactory:
    """Call it (with engine options such as keepalive_s) inside the test's event loop."""
    if request.param in OFFLINE_ONLY and request.node.get_closest_marker("needs_whatsapp"):
        pytest.skip(
            f"needs WhatsApp's servers and a phone; {request.param} is covered offline by "
            "tests/unit/test_whatsmeow_*.py and on a real phone by docs/engines.md's manual test"
        )
    if request.param == "baileys" and request.node.originalname in FAKE_CANNOT:
        pytest.skip(f"baileys: {FAKE_CANNOT[request.node.originalname]} (docs/engines.md)")
    return ENGINE_FACTORIES[request.param](request)
