"""Received files (images, video, audio, voice notes, documents, stickers): downloaded from the
engine's media server (bounded in size, retried with backoff), stored once in the media bucket
under the tenant, and announced with a short-lived signed URL. A download that fails for good is
described by its error instead, so the message itself is never lost (docs/messaging.md,
"Inbound media")."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.wait import WaitBaseT

from runner.io import Offload
from wagate.contracts import MAX_MEDIA_BYTES, InboundMediaDoc, InboundMediaError
from wagate.domain.events import InboundMedia, InboundMessage
from wagate.domain.ids import inbound_media_id
from wagate.errors import (
    DependencyUnavailable,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
    WagateError,
)
from wagate.logs import get_logger
from wagate.ports import SignedUrl, UrlSigner
from wagate.services.media import Media, object_name, received_type
from wagate.services.monitoring import INBOUND_MEDIA

log = get_logger("wagate.runner.inbound_media")

# Gone from the server, too large, malformed: another attempt would fail the same way.
_FINAL = (NotFound, PayloadTooLarge, ValidationFailed)


def _worth_retrying(error: BaseException) -> bool:
    # Not a cancellation (a deadline, a stop): tenacity's attempt context catches those too.
    return isinstance(error, Exception) and not isinstance(error, _FINAL)


@dataclass
class InboundMediaStore:
    media: Media
    signer: UrlSigner | None
    io: Offload
    max_bytes: int = MAX_MEDIA_BYTES
    attempts: int = 4
    url_ttl_s: int = 3600
    # The whole download, every attempt included: the session's next events wait for it.
    deadline_s: float = 120.0
    # Full jitter: waits of up to 0.5, 1, 2 s… (at most 8 s): four attempts wait 3.5 s at most.
    wait: WaitBaseT = field(default_factory=lambda: wait_random_exponential(multiplier=0.5, max=8))

    async def download(
        self, tenant_id: str, session_id: str, msg: InboundMessage
    ) -> InboundMediaDoc | None:
        """The received message's file in the bucket (or why it is not); None without a file."""
        ref = msg.media
        if ref is None:
            return None
        described = InboundMediaDoc(
            mime_type=received_type(ref.mime_type), size=ref.size, filename=ref.filename
        )
        media_id = inbound_media_id(session_id, msg.wa_id)
        outcome = "already_stored"
        try:
            stored = await self.io(self.media.find, tenant_id, media_id)
            if stored is None:
                outcome = "stored"
                data = await self._fetch(ref)
                stored = await self.io(
                    self.media.store_received,
                    tenant_id,
                    media_id,
                    data,
                    described.mime_type,
                    session_id=session_id,
                    wa_id=msg.wa_id,
                )
        except WagateError as e:
            INBOUND_MEDIA.labels(e.code).inc()
            log.warning(
                "received file not stored",
                session_id=session_id,
                wa_id=msg.wa_id,
                code=e.code,
                error=e.message,
            )
            return described.model_copy(
                update={"error": InboundMediaError(code=e.code, message=e.message)}
            )
        INBOUND_MEDIA.labels(outcome).inc()
        return described.model_copy(
            update={"media_id": media_id, "size": stored.size, "sha256": stored.sha256}
        )

    async def _fetch(self, ref: InboundMedia) -> bytes:
        limit = self.max_bytes
        if ref.size is not None and ref.size > limit:
            raise PayloadTooLarge(f"the file has {ref.size} bytes; at most {limit} are downloaded")
        try:
            async with asyncio.timeout(self.deadline_s):
                data = await self._attempts(ref, limit)
        except TimeoutError as e:
            raise DependencyUnavailable(
                f"the download did not finish within {self.deadline_s:g} s"
            ) from e
        if len(data) > limit:
            raise PayloadTooLarge(f"the file has more than {limit} bytes")
        if not data:
            raise NotFound("the file is empty")
        return data

    async def _attempts(self, ref: InboundMedia, limit: int) -> bytes:
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=self.wait,
                retry=retry_if_exception(_worth_retrying),
                reraise=True,
            ):
                with attempt:
                    data = await ref.fetch(limit)
        except WagateError:
            raise
        except Exception as e:  # an engine's own failure (a socket, a worker): as unavailable
            raise DependencyUnavailable(f"download failed: {e!r}") from e
        return data

    async def signed_url(self, tenant_id: str, media_id: str) -> SignedUrl | None:
        """A fresh download URL of a stored file; None if it cannot be signed now (the file is
        still served by GET /v1/media/{id})."""
        if self.signer is None:
            return None
        try:
            return await self.io(self.signer.sign, object_name(tenant_id, media_id), self.url_ttl_s)
        except WagateError as e:
            log.warning("media URL not signed", media_id=media_id, error=e.message)
            return None
