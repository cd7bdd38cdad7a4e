"""The engine contract for the content kinds beyond text and media (issue 22): voice notes,
stickers, mentions, polls and their votes, link previews — on every engine of
conftest.ENGINE_FACTORIES, each checked by what the recipient reads (`network.seen`: the
simulator's handset, or what the protocol fake decrypted of Baileys' stanza and upload).

Files and pages come from a local web server the test runs, fetched through an egress guard that
allows loopback (as the local stack's `WAGATE_EGRESS_ALLOW_PRIVATE`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from tests.engine_contract.conftest import EngineFactory
from tests.engine_contract.test_engine_contract import (
    ACK_TIMEOUT,
    BOB,
    BOB_DIGITS,
    ME,
    Contract,
    Device,
    contract,
)
from wagate.adapters.egress import EgressGuard
from wagate.contracts import MediaContent, PollContent, TextContent, poll_option_hash
from wagate.domain.egress_policy import EgressPolicy
from wagate.domain.events import InboundMessage

pytestmark = [pytest.mark.integration, pytest.mark.needs_whatsapp]

CAROL = "+15550500003"
CAROL_DIGITS = "15550500003"
LOOPBACK_GUARD = EgressGuard(EgressPolicy(https_only=False, allow_private=True))
VOICE = b"OggS" + os.urandom(2000)  # an Ogg page header: what the format check looks for
STICKER = b"RIFF" + (1200).to_bytes(4, "little") + b"WEBP" + os.urandom(1200)
THUMBNAIL = b"\xff\xd8\xff\xe0" + os.urandom(900)  # a JPEG's first bytes
PAGE = b"""<!doctype html><html><head><title>fallback</title>
<meta property="og:title" content="Spring sale &amp; more">
<meta property="og:description" content="Everything 20% off until Sunday.">
<meta property="og:image" content="/thumb.jpg"></head><body>hello</body></html>"""


@asynccontextmanager
async def web_files() -> AsyncIterator[str]:
    """A local web server with the files these tests send; yields its base URL."""
    files = {
        "/voice.ogg": (VOICE, "audio/ogg"),
        "/sticker.webp": (STICKER, "image/webp"),
        "/sale.html": (PAGE, "text/html"),
        "/thumb.jpg": (THUMBNAIL, "image/jpeg"),
    }

    async def serve(request: web.Request) -> web.Response:
        if request.path not in files:
            return web.Response(status=404)
        body, mime = files[request.path]
        return web.Response(body=body, content_type=mime)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def send(device: Device, wa_id: str, content: Any) -> None:
    """Send a content model as the runner does (runner/sending.py: no type, no nulls)."""
    body = content.model_dump(mode="json", exclude={"type"}, exclude_none=True)
    ack = await device.conn.send(wa_id, BOB, content.type, body, timeout=ACK_TIMEOUT)
    assert ack.wa_id == wa_id


async def seen_once(c: Contract, wa_id: str, recipient: str = BOB) -> dict[str, Any]:
    messages = [m for m in await c.network.seen(recipient) if m["id"] == wa_id]
    assert len(messages) == 1, messages
    return dict(messages[0])


# ------------------------------------------------------------------ voice notes and stickers


def test_a_voice_note_arrives_as_a_voice_note_with_the_same_bytes(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        async with web_files() as files:
            device = await c.pair()
            voice = MediaContent(type="voice", url=f"{files}/voice.ogg", mime_type="audio/ogg")
            await send(device, "3EB0VOICE1", voice)
            seen = await seen_once(c, "3EB0VOICE1")
        assert seen["kind"] == "voice", seen
        assert seen["mime_type"].startswith("audio/ogg")
        assert seen["sha256"] == hashlib.sha256(VOICE).hexdigest()

    contract(engine_factory, body, egress_guard=LOOPBACK_GUARD)


def test_a_sticker_arrives_as_a_sticker_with_the_same_bytes(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        async with web_files() as files:
            device = await c.pair()
            sticker = MediaContent(type="sticker", url=f"{files}/sticker.webp")
            await send(device, "3EB0STICKER1", sticker)
            seen = await seen_once(c, "3EB0STICKER1")
        assert seen["kind"] == "sticker"
        assert seen["sha256"] == hashlib.sha256(STICKER).hexdigest()

    contract(engine_factory, body, egress_guard=LOOPBACK_GUARD)


# ------------------------------------------------------------------ mentions


def test_mentions_arrive_as_the_mentioned_users_jids(engine_factory: EngineFactory) -> None:
    async def body(c: Contract) -> None:
        device = await c.pair()
        text = TextContent(
            body=f"@{BOB_DIGITS} and @{CAROL_DIGITS}: the plan is ready",
            mentions=[BOB, f"{CAROL_DIGITS}@s.whatsapp.net"],
        )
        await send(device, "3EB0MENTION1", text)
        seen = await seen_once(c, "3EB0MENTION1")
        assert seen["kind"] == "text" and seen["body"] == text.body
        assert seen["mentions"] == [
            f"{BOB_DIGITS}@s.whatsapp.net",
            f"{CAROL_DIGITS}@s.whatsapp.net",
        ]

    contract(engine_factory, body)


# ------------------------------------------------------------------ polls


def test_a_poll_arrives_and_each_vote_comes_back_even_after_a_restart(
    engine_factory: EngineFactory,
) -> None:
    """A vote is encrypted with the poll's secret: one that arrives after the session was
    restored from its auth state (a runner restart, a takeover) must still be read."""

    async def body(c: Contract) -> None:
        device = await c.pair()
        poll = PollContent(question="Lunch?", options=["Tea", "Pizza", "Soup"], selectable_count=2)
        await send(device, "3EB0POLL1", poll)
        seen = await seen_once(c, "3EB0POLL1")
        assert (seen["kind"], seen["question"], seen["options"]) == ("poll", "Lunch?", poll.options)
        assert seen["selectable_count"] == 2

        await c.network.vote(ME, BOB, "3EB0POLL1", ["Tea", "Soup"], wa_id="3EB0VOTE1")
        vote = await device.tap.next(InboundMessage)
        assert (vote.wa_id, vote.kind, vote.from_me) == ("3EB0VOTE1", "poll_vote", False)
        assert BOB_DIGITS in vote.sender and BOB_DIGITS in vote.chat
        assert vote.content["poll_id"] == "3EB0POLL1"
        assert vote.content["selected_hashes"] == [poll_option_hash(o) for o in ("Tea", "Soup")]

        await device.tap.nothing_for(1.0)  # Baileys saves its auth state 0.5 s after a change
        again = await c.reconnect(device)
        await c.network.vote(ME, BOB, "3EB0POLL1", ["Pizza"], wa_id="3EB0VOTE2")
        changed = await again.tap.next(InboundMessage)
        if changed.wa_id == "3EB0VOTE1":  # redelivered: never taken from the first connection
            changed = await again.tap.next(InboundMessage)
        assert changed.wa_id == "3EB0VOTE2" and changed.kind == "poll_vote"
        assert changed.content["selected_hashes"] == [poll_option_hash("Pizza")]

    contract(engine_factory, body, timeout=30)


def test_a_vote_from_a_voter_named_by_lid_is_read_too(engine_factory: EngineFactory) -> None:
    """WhatsApp names more and more customers by LID only: their votes bind the LIDs."""

    async def body(c: Contract) -> None:
        device = await c.pair()
        await send(device, "3EB0POLL2", PollContent(question="Size?", options=["S", "M", "L"]))
        await c.network.vote(ME, BOB, "3EB0POLL2", ["M"], wa_id="3EB0VOTE3", addressing="lid")
        vote = await device.tap.next(InboundMessage)
        assert (vote.wa_id, vote.kind) == ("3EB0VOTE3", "poll_vote")
        assert (vote.sender, vote.sender_lid) == (c.network.lid_of(BOB),) * 2
        assert vote.content["selected_hashes"] == [poll_option_hash("M")]

    contract(engine_factory, body)


# ------------------------------------------------------------------ link previews


def test_a_link_preview_carries_the_pages_title_description_and_thumbnail(
    engine_factory: EngineFactory,
) -> None:
    async def body(c: Contract) -> None:
        async with web_files() as files:
            device = await c.pair()
            url = f"{files}/sale.html"
            await send(device, "3EB0PREVIEW1", TextContent(body=f"see {url}.", link_preview=True))
            seen = await seen_once(c, "3EB0PREVIEW1")
        assert seen["body"] == f"see {url}."
        assert seen["preview"] == {
            "title": "Spring sale & more",
            "description": "Everything 20% off until Sunday.",
            "url": url,
            "thumbnail_bytes": len(THUMBNAIL),
        }

    contract(engine_factory, body, egress_guard=LOOPBACK_GUARD)


@pytest.mark.parametrize("where", ["missing page", "refused by the egress guard"])
def test_a_preview_that_cannot_be_made_sends_the_text_without_one(
    engine_factory: EngineFactory, where: str
) -> None:
    async def body(c: Contract) -> None:
        async with web_files() as files:
            device = await c.pair()
            url = f"{files}/gone.html" if where == "missing page" else f"{files}/sale.html"
            text = TextContent(body=f"see {url}", link_preview=True)
            await send(device, "3EB0NOPREVIEW", text)
            seen = await seen_once(c, "3EB0NOPREVIEW")
        assert seen["body"] == text.body and "preview" not in seen

    # The strictest guard refuses loopback (and plain http): the page is never fetched.
    guard = LOOPBACK_GUARD if where == "missing page" else EgressGuard.strictest()
    contract(engine_factory, body, egress_guard=guard)
