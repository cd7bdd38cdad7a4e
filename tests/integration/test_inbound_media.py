"""Received files on fake-gcs-server: stored once under the tenant (a redelivery neither downloads
nor stores again), downloads retried, a final failure recorded as the error, and a V4 signed URL
that serves the same bytes from the Storage emulator and whose signature verifies."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from prometheus_client import REGISTRY
from tenacity import wait_none

from runner.inbound_media import InboundMediaStore
from runner.io import Offload
from wagate.adapters.signed_urls import GcsUrlSigner, local_signing_key
from wagate.adapters.storage import GcsBlobStore, make_client
from wagate.domain.events import InboundMedia, InboundMessage
from wagate.domain.ids import inbound_media_id
from wagate.errors import DependencyUnavailable, NotFound
from wagate.services.media import Media, object_name

pytestmark = pytest.mark.integration

TENANT = "ten_media"
SESSION = "ses_media"


@pytest.fixture
def bucket(gcs_env: dict[str, str]) -> Iterator[GcsBlobStore]:
    blobs = GcsBlobStore(make_client("wagate-test"), f"m-{uuid.uuid4().hex[:12]}")
    blobs.ensure_bucket(versioning=False)
    yield blobs


class Downloads:
    """The engine's side of a download: serves `data` after failing `failures` times."""

    def __init__(self, data: bytes, failures: int = 0, error: Exception | None = None) -> None:
        self.data = data
        self.failures = failures
        self.error = error or DependencyUnavailable("media host busy")
        self.calls = 0

    async def fetch(self, limit: int) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.data


def _outcomes(outcome: str) -> float:
    return REGISTRY.get_sample_value("wagate_inbound_media_total", {"outcome": outcome}) or 0.0


def _message(wa_id: str, downloads: Downloads, mime: str = "image/jpeg") -> InboundMessage:
    media = InboundMedia(mime_type=mime, fetch=downloads.fetch, size=len(downloads.data))
    return InboundMessage(
        wa_id=wa_id,
        chat="15550001111@s.whatsapp.net",
        sender="15550001111@s.whatsapp.net",
        kind="image",
        content={},
        ts=datetime.now(UTC),
        media=media,
    )


def _store(bucket: GcsBlobStore, key: str | None = None, **options: object) -> InboundMediaStore:
    endpoint = os.environ["STORAGE_EMULATOR_HOST"]
    signer = GcsUrlSigner(
        make_client("wagate-test"), bucket.bucket_name, key_json=key, endpoint=endpoint
    )
    return InboundMediaStore(
        Media(bucket), signer if key else None, Offload(), wait=wait_none(), **options
    )  # type: ignore[arg-type]


def test_a_received_file_is_stored_once_under_the_tenant_with_its_facts(
    bucket: GcsBlobStore,
) -> None:
    data = b"\xff\xd8\xff" + os.urandom(30_000)
    downloads = Downloads(data)
    store = _store(bucket)
    counted = {o: _outcomes(o) for o in ("stored", "already_stored")}
    first = asyncio.run(store.download(TENANT, SESSION, _message("3EB0A", downloads)))
    assert first is not None and first.error is None
    assert first.media_id == inbound_media_id(SESSION, "3EB0A")
    assert (first.size, first.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert bucket.get(object_name(TENANT, first.media_id)).data == data
    assert bucket.head(object_name(TENANT, first.media_id)).metadata == {
        "sha256": first.sha256,
        "content_type": "image/jpeg",
        "direction": "in",
        "session_id": SESSION,
        "wa_id": "3EB0A",
    }
    # Redelivered (at-least-once engines): found in the bucket, not downloaded or written again.
    again = asyncio.run(store.download(TENANT, SESSION, _message("3EB0A", downloads)))
    assert again == first and downloads.calls == 1
    assert {o: _outcomes(o) - n for o, n in counted.items()} == {"stored": 1, "already_stored": 1}
    assert len(bucket.versions(object_name(TENANT, first.media_id))) == 1
    # Another tenant does not have it.
    with pytest.raises(NotFound):
        Media(bucket).read("ten_other", first.media_id)
    view, body = Media(bucket).read(TENANT, first.media_id)
    assert (body, view.content_type, view.sha256) == (data, "image/jpeg", first.sha256)


def test_a_failing_download_is_retried_then_stored(bucket: GcsBlobStore) -> None:
    downloads = Downloads(b"%PDF" + os.urandom(100), failures=3)
    result = asyncio.run(_store(bucket).download(TENANT, SESSION, _message("3EB0B", downloads)))
    assert result is not None and result.error is None and downloads.calls == 4


def test_a_download_that_keeps_failing_is_recorded_as_its_error_and_stores_nothing(
    bucket: GcsBlobStore,
) -> None:
    downloads = Downloads(b"x", failures=99)
    result = asyncio.run(_store(bucket).download(TENANT, SESSION, _message("3EB0C", downloads)))
    assert result is not None and result.media_id is None and downloads.calls == 4
    assert result.error is not None and result.error.code == "dependency_unavailable"
    assert "busy" in result.error.message and result.mime_type == "image/jpeg"
    assert bucket.list_objects(f"media/{TENANT}/") == []


def test_a_file_gone_from_the_server_is_not_retried(bucket: GcsBlobStore) -> None:
    downloads = Downloads(b"x", failures=99, error=NotFound("the media host has no such file"))
    result = asyncio.run(_store(bucket).download(TENANT, SESSION, _message("3EB0D", downloads)))
    assert result is not None and result.error is not None
    assert (result.error.code, downloads.calls) == ("not_found", 1)


def test_a_file_larger_than_the_bound_is_not_downloaded(bucket: GcsBlobStore) -> None:
    downloads = Downloads(os.urandom(2_000))
    store = _store(bucket, max_bytes=1_000)
    result = asyncio.run(store.download(TENANT, SESSION, _message("3EB0E", downloads)))
    assert result is not None and result.error is not None
    assert (result.error.code, downloads.calls) == ("payload_too_large", 0)


@pytest.mark.timeout(30)  # a cancellation that is retried would hang here
def test_a_download_that_hangs_gives_up_at_the_deadline_and_a_stop_is_not_retried(
    bucket: GcsBlobStore,
) -> None:
    calls = 0

    async def hang(limit: int) -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(3600)
        return b""

    hanging = dataclasses.replace(
        _message("3EB0H", Downloads(b"x")), media=InboundMedia("image/png", hang)
    )
    store = _store(bucket, deadline_s=0.3)

    async def timed() -> object:
        started = asyncio.get_running_loop().time()
        result = await store.download(TENANT, SESSION, hanging)
        return result, asyncio.get_running_loop().time() - started

    result, took = asyncio.run(timed())  # type: ignore[misc]
    assert result.error.code == "dependency_unavailable" and "0.3 s" in result.error.message
    assert took < 2 and calls == 1

    async def stopped() -> None:  # the session stops mid-download: cancelled, not retried
        task = asyncio.create_task(_store(bucket).download(TENANT, SESSION, hanging))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    calls = 0
    asyncio.run(stopped())
    assert calls == 1


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(pairs))


def _verify_v4(url: str, public_key: rsa.RSAPublicKey) -> None:
    """Cloud Storage's V4 check, done here because fake-gcs-server does not check signatures."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    signature = bytes.fromhex(dict(pairs)["X-Goog-Signature"])
    unsigned = [(k, v) for k, v in pairs if k != "X-Goog-Signature"]
    query = dict(unsigned)
    host = f"host:{parts.netloc}\n"
    canonical = "\n".join(
        ["GET", parts.path, _canonical_query(unsigned), host, "host", "UNSIGNED-PAYLOAD"]
    )
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            query["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    public_key.verify(signature, to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())


def test_the_signed_url_serves_the_same_bytes_from_the_emulator_and_verifies(
    bucket: GcsBlobStore,
) -> None:
    key = local_signing_key()
    data = os.urandom(50_000)
    store = _store(bucket, key, url_ttl_s=900)
    stored = asyncio.run(store.download(TENANT, SESSION, _message("3EB0F", Downloads(data))))
    assert stored is not None and stored.media_id is not None
    before = datetime.now(UTC)
    signed = asyncio.run(store.signed_url(TENANT, stored.media_id))
    assert signed is not None
    query = dict(parse_qsl(urlsplit(signed.url).query))
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Expires"] == "900"
    assert query["X-Goog-Credential"].startswith("wagate-media-signer@")
    assert query["X-Goog-SignedHeaders"] == "host"
    assert query["response-content-disposition"] == "attachment"  # saved, never rendered
    assert abs(signed.expires_at - (before + timedelta(seconds=900))) < timedelta(seconds=5)
    assert signed.url.startswith(f"{os.environ['STORAGE_EMULATOR_HOST']}/{bucket.bucket_name}/")
    with urllib.request.urlopen(signed.url, timeout=10) as response:
        assert hashlib.sha256(response.read()).hexdigest() == stored.sha256
    private = serialization.load_pem_private_key(
        json.loads(key)["private_key"].encode(), password=None
    )
    assert isinstance(private, rsa.RSAPrivateKey)
    _verify_v4(signed.url, private.public_key())
    tampered = signed.url.replace("X-Goog-Expires=900", "X-Goog-Expires=604800")
    with pytest.raises(InvalidSignature):
        _verify_v4(tampered, private.public_key())
    # What the emulator does not do (docs/messaging.md says so): it serves a tampered URL too.
    with urllib.request.urlopen(tampered, timeout=10) as response:
        assert response.read() == data
