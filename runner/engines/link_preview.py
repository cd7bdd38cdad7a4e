"""Link previews for text messages (`link_preview: true`): the runner fetches the first http(s)
URL of the body through the egress guard and attaches its title, description and thumbnail, as
a phone does before it sends. A preview is a nicety: any failure sends the text without one.

Hand-written on the standard library's HTMLParser: the page's `<title>` and its Open Graph /
description `<meta>` tags are all that is read, from at most PAGE_LIMIT bytes.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from wagate.adapters import egress
from wagate.errors import WagateError
from wagate.logs import get_logger

log = get_logger("wagate.runner.link_preview")

PAGE_LIMIT = 512 * 1024
THUMBNAIL_LIMIT = 64 * 1024  # WhatsApp's jpegThumbnail is a small JPEG; larger ones are left out
TIMEOUT_S = 5.0  # per fetch: a slow page must not hold the chat's sends for long
TITLE_MAX = 255
DESCRIPTION_MAX = 1024
URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


def first_url(body: str) -> str | None:
    """The first http(s) URL in a text, without the punctuation that usually ends a sentence."""
    found = URL.search(body)
    return found.group(0).rstrip(".,;:!?)]}") if found else None


class _PageMeta(HTMLParser):
    """The `<title>` and the `<meta>` tags of a page's head."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag == "meta":
            name = (values.get("property") or values.get("name") or "").lower()
            if name and "content" in values:
                self.meta.setdefault(name, values["content"].strip())
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def parse_page(html: str, url: str) -> dict[str, str]:
    """Title, description and the image's absolute URL of a page (what it has of them)."""
    page = _PageMeta()
    page.feed(html)
    page.close()
    title = page.meta.get("og:title") or page.title.strip()
    description = page.meta.get("og:description") or page.meta.get("description") or ""
    found = {"title": title[:TITLE_MAX], "description": description[:DESCRIPTION_MAX]}
    if image := page.meta.get("og:image"):
        found["image"] = urljoin(url, image)
    return {k: v for k, v in found.items() if v}


async def fetch_preview(url: str, guard: egress.EgressGuard) -> dict[str, Any] | None:
    """The preview of `url` — {url, title, description?, thumbnail_b64?} — or None when the page
    cannot be fetched through the guard or has no title."""
    try:
        page = await egress.fetch_media(url, guard, limit=PAGE_LIMIT, timeout_s=TIMEOUT_S)
    except WagateError as e:
        log.info("no link preview", url=url[:200], error=e.message)
        return None
    found = parse_page(page.decode("utf-8", errors="replace"), url)
    if "title" not in found:
        return None
    preview: dict[str, Any] = {"url": url, "title": found["title"]}
    if "description" in found:
        preview["description"] = found["description"]
    if image := found.get("image"):
        try:
            data = await egress.fetch_media(
                image, guard, limit=THUMBNAIL_LIMIT, timeout_s=TIMEOUT_S
            )
        except WagateError as e:
            log.info("link preview without its image", url=image[:200], error=e.message)
        else:
            if data[:3] == b"\xff\xd8\xff":  # a JPEG, which is what WhatsApp shows
                preview["thumbnail_b64"] = base64.b64encode(data).decode()
    return preview


async def with_link_preview(content: dict[str, Any], guard: egress.EgressGuard) -> dict[str, Any]:
    """A text's content with `preview` attached when it asks for one (`link_preview`) and its
    first URL yields one; otherwise the content as it was. The option itself goes on the
    wire only when asked for: a text without it is what WhatsApp carries."""
    if not content.get("link_preview"):
        return {k: v for k, v in content.items() if k != "link_preview"}
    if "preview" in content:
        return content
    url = first_url(str(content.get("body", "")))
    if url is None:
        return content
    preview = await fetch_preview(url, guard)
    return content if preview is None else {**content, "preview": preview}
