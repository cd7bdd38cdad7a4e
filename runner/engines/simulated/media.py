"""Downloads a received file from the simulator's media host (simulator/media.py). The host is
the configured simulator, never an address a message chose (a frame names only a path), so this
is not a user's URL for the egress guard."""

from __future__ import annotations

import aiohttp

from wagate.errors import DependencyUnavailable, NotFound, PayloadTooLarge

DOWNLOAD_TIMEOUT_S = 60.0


async def download(http: aiohttp.ClientSession, url: str, limit: int) -> bytes:
    """At most `limit` bytes (streamed, aborted past it): NotFound for a file the host no longer
    has, PayloadTooLarge past the limit, DependencyUnavailable for everything worth a retry."""
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S)) as r:
            if r.status == 404:
                raise NotFound("the media host no longer has the file")
            if r.status != 200:
                raise DependencyUnavailable(f"the media host answered HTTP {r.status}")
            if r.content_length is not None and r.content_length > limit:
                raise PayloadTooLarge(f"the file has more than {limit} bytes")
            data = bytearray()
            async for chunk in r.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise PayloadTooLarge(f"the file has more than {limit} bytes")
            return bytes(data)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise DependencyUnavailable(f"the media host is unreachable: {e!r}") from e
