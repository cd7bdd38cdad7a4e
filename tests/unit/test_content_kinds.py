"""The content kinds of issue 22 at the edges: what the API refuses (code, message and field, as
functions/web.py renders a validation error), the format checks the real engines make on a voice
note's or a sticker's bytes, and how a link preview is read from a page."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from functions.web import validation_error
from runner.engines.link_preview import first_url, parse_page
from runner.engines.outgoing import check_format, fetch_media
from wagate.adapters.egress import EgressGuard
from wagate.contracts import SendMessageRequest, poll_option_hash
from wagate.contracts.content import MAX_MENTIONS
from wagate.errors import PermanentSendError

OGG = b"OggS\x00\x02" + bytes(64)
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(64)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def refusal(content: dict[str, Any]) -> tuple[str, str, str]:
    """(code, field, message) of the API's answer to a send with this content."""
    with pytest.raises(ValidationError) as refused:
        SendMessageRequest.model_validate({"to": "+15551234567", "content": content})
    error = validation_error(refused.value)
    assert error.field is not None
    return error.code, error.field, error.message


POLL = {"type": "poll", "question": "Lunch?", "options": ["Tea", "Soup"]}
MENTIONED = "+15550001111"


@pytest.mark.parametrize(
    ("content", "field", "says"),
    [
        ({**POLL, "options": ["Tea"]}, "content.poll.options", "at least 2"),
        ({**POLL, "options": [f"o{i}" for i in range(13)]}, "content.poll.options", "at most 12"),
        ({**POLL, "options": ["Tea", "Tea "]}, "content.poll.options", "distinct"),
        ({**POLL, "options": ["Tea", ""]}, "content.poll.options.1", "at least 1"),
        ({**POLL, "question": ""}, "content.poll.question", "at least 1"),
        ({**POLL, "selectable_count": 3}, "content.poll.selectable_count", "exceed"),
        ({**POLL, "selectable_count": 0}, "content.poll.selectable_count", "greater than"),
        (
            {"type": "sticker", "url": "https://example.com/s.png", "mime_type": "image/png"},
            "content.sticker.mime_type",
            "image/webp",
        ),
        (
            {"type": "voice", "url": "https://example.com/v.mp3", "mime_type": "audio/mpeg"},
            "content.voice.mime_type",
            "audio/ogg",
        ),
        (
            {"type": "voice", "url": "https://example.com/v.ogg", "caption": "hello"},
            "content.voice.caption",
            "no caption",
        ),
        (
            {"type": "sticker", "url": "https://example.com/s.webp", "filename": "s.webp"},
            "content.sticker.filename",
            "no filename",
        ),
        (
            {"type": "text", "body": "hello", "mentions": [MENTIONED]},
            "content.text.mentions",
            "@15550001111",
        ),
        (
            {"type": "text", "body": "hi @155500011112", "mentions": [MENTIONED]},
            "content.text.mentions",
            "@15550001111",
        ),
        (
            {
                "type": "text",
                "body": "@15550001111",
                "mentions": [MENTIONED, "15550001111@s.whatsapp.net"],
            },
            "content.text.mentions",
            "repeat",
        ),
        (
            {"type": "text", "body": "@x", "mentions": ["not a number"]},
            "content.text.mentions.0",
            "pattern",
        ),
        (
            {
                "type": "text",
                "body": " ".join(f"@1555000{i:04d}" for i in range(MAX_MENTIONS + 1)),
                "mentions": [f"+1555000{i:04d}" for i in range(MAX_MENTIONS + 1)],
            },
            "content.text.mentions",
            f"at most {MAX_MENTIONS}",
        ),
        (
            {"type": "text", "body": "x", "link_preview": "sometimes"},
            "content.text.link_preview",
            "",
        ),
    ],
)
def test_bad_content_is_a_validation_error_naming_its_field(
    content: dict[str, Any], field: str, says: str
) -> None:
    code, at, message = refusal(content)
    assert (code, at) == ("validation_failed", field), message
    assert says in message and message.startswith(f"invalid request: {field}: ")


@pytest.mark.parametrize(
    "content",
    [
        {**POLL, "selectable_count": 2},
        {"type": "voice", "media_id": "med_01JH3Q8Z6W0V9K4T2B7N5M1X3C"},
        {
            "type": "voice",
            "url": "https://example.com/v.ogg",
            "mime_type": "audio/ogg; codecs=opus",
        },
        {"type": "sticker", "url": "https://example.com/s.webp", "mime_type": "image/webp"},
        {"type": "text", "body": f"hi @{MENTIONED[1:]}!", "mentions": [MENTIONED]},
        {"type": "text", "body": "hi @100000000000007", "mentions": ["100000000000007@lid"]},
        {"type": "text", "body": "see https://example.com", "link_preview": True},
    ],
)
def test_each_new_kind_is_accepted(content: dict[str, Any]) -> None:
    request = SendMessageRequest.model_validate({"to": "+15551234567", "content": content})
    assert request.content.type == content["type"]


def test_link_previews_are_off_unless_asked_for() -> None:
    request = SendMessageRequest.model_validate(
        {"to": "+15551234567", "content": {"type": "text", "body": "see https://example.com"}}
    )
    assert request.content.model_dump()["link_preview"] is False


def test_a_poll_option_is_named_in_a_vote_by_the_sha256_of_its_name() -> None:
    # The SHA-256 of b"Tea" (as `printf Tea | sha256sum` prints it): what a PollVoteMessage holds.
    tea = "017979e8299034d8c481af1f282eb32af0ca7e39553664ba27289257b01d49c1"
    assert poll_option_hash("Tea") == tea and poll_option_hash("Tea ") != tea


# ------------------------------------------------------------------ formats


@pytest.mark.parametrize(
    ("kind", "data", "ok"),
    [
        ("voice", OGG, True),
        ("voice", PNG, False),
        ("voice", WEBP, False),
        ("sticker", WEBP, True),
        ("sticker", PNG, False),
        ("sticker", b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(8), False),
        ("image", PNG, True),
        ("audio", PNG, True),  # only voice notes and stickers have a required format
    ],
)
def test_voice_notes_must_be_ogg_and_stickers_webp(kind: str, data: bytes, ok: bool) -> None:
    if ok:
        check_format(kind, data)
        return
    with pytest.raises(PermanentSendError) as refused:
        check_format(kind, data)
    assert refused.value.field == "content" and kind in refused.value.message


def test_fetched_media_of_the_wrong_format_is_a_permanent_error() -> None:
    def media(session_id: str, media_id: str) -> bytes:
        return PNG

    content = {"media_id": "med_01JH3Q8Z6W0V9K4T2B7N5M1X3C"}
    guard = EgressGuard.strictest()
    assert asyncio.run(fetch_media(media, guard, "ses_1", content, "image")) == PNG
    with pytest.raises(PermanentSendError, match="WebP"):
        asyncio.run(fetch_media(media, guard, "ses_1", content, "sticker"))


# ------------------------------------------------------------------ link previews


@pytest.mark.parametrize(
    ("body", "url"),
    [
        ("see https://example.com/a?b=1.", "https://example.com/a?b=1"),
        ("(http://example.com/x) and https://second.example", "http://example.com/x"),
        ("HTTPS://EXAMPLE.COM/Path!", "HTTPS://EXAMPLE.COM/Path"),
        ("no link here, ftp://example.com neither", None),
    ],
)
def test_the_preview_is_of_the_first_http_url(body: str, url: str | None) -> None:
    assert first_url(body) == url


def test_a_page_gives_its_open_graph_title_description_and_absolute_image() -> None:
    page = """<html><head><title> Plain title </title>
    <meta name="description" content="plain description">
    <meta property="og:title" content="OG &amp; title">
    <meta property="og:image" content="/img/t.jpg"></head></html>"""
    assert parse_page(page, "https://shop.example/sale/") == {
        "title": "OG & title",
        "description": "plain description",
        "image": "https://shop.example/img/t.jpg",
    }


def test_a_page_without_open_graph_uses_its_title_and_long_text_is_cut() -> None:
    page = f"<title>{'t' * 400}</title><meta property='og:description' content='{'d' * 2000}'>"
    found = parse_page(page, "https://example.com")
    assert len(found["title"]) == 255 and len(found["description"]) == 1024
    assert parse_page("<p>nothing</p>", "https://example.com") == {}
