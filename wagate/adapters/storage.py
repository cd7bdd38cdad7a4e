"""Cloud Storage behind ports.BlobStore: generation preconditions (a stale generation is a
StaleGeneration, not a vendor error), object versions, prefix listing.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from wagate.adapters import google_errors
from wagate.adapters.google_errors import Rule
from wagate.adapters.guard import DependencyGuard
from wagate.errors import DependencyUnavailable, NotFound, StaleGeneration
from wagate.ports import Blob, BlobInfo

CALL_TIMEOUT_S = 30.0
# The library's default retries transient errors for 120 s; an outage must surface sooner.
RETRY = DEFAULT_RETRY.with_timeout(10.0)


def make_client(project_id: str) -> storage.Client:
    """A client for the emulator (STORAGE_EMULATOR_HOST) or the real service."""
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project=project_id, credentials=AnonymousCredentials())
    return storage.Client(project=project_id)


_ERRORS: list[Rule] = [
    (
        gexc.PreconditionFailed,
        lambda what, e: StaleGeneration(f"{what}: generation precondition failed (another writer)"),
    ),
    (gexc.NotFound, lambda what, e: NotFound(f"{what} not found")),
    (
        (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.TooManyRequests),
        lambda what, e: DependencyUnavailable(
            f"Cloud Storage unavailable during {what}", retry_after=5
        ),
    ),
    (
        gexc.GoogleAPICallError,
        lambda what, e: DependencyUnavailable(f"Cloud Storage error during {what}: {e.message}"),
    ),
    (
        (gexc.RetryError, ConnectionError, OSError),
        lambda what, e: DependencyUnavailable(
            f"Cloud Storage unreachable during {what}", retry_after=5
        ),
    ),
]


def translated(what: str) -> AbstractContextManager[None]:
    """Vendor exceptions → wagate errors."""
    return google_errors.translated(what, _ERRORS)


class GcsBlobStore:
    """ports.BlobStore on one bucket."""

    def __init__(
        self, client: storage.Client, bucket: str, guard: DependencyGuard | None = None
    ) -> None:
        self._client = client
        self.guard = guard or DependencyGuard("storage")
        self._bucket = client.bucket(bucket)
        self.bucket_name = bucket

    def ensure_bucket(self, *, versioning: bool = True) -> None:
        """Create the bucket if missing (local stack and tests; Terraform does it in the cloud)."""
        with self.guard.call("ensure_bucket"), translated(f"bucket {self.bucket_name}"):
            try:
                self._client.get_bucket(self.bucket_name, timeout=CALL_TIMEOUT_S)
            except gexc.NotFound:
                bucket = self._client.bucket(self.bucket_name)
                bucket.versioning_enabled = versioning
                self._client.create_bucket(bucket, timeout=CALL_TIMEOUT_S)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None = None,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> int:
        blob = self._bucket.blob(name)
        if metadata:
            blob.metadata = metadata
        with self.guard.call("put"), translated(f"object {name}"):
            blob.upload_from_string(
                data,
                content_type=content_type,
                if_generation_match=if_generation_match,
                timeout=CALL_TIMEOUT_S,
                retry=RETRY,
            )
        return int(blob.generation or 0)

    def get(self, name: str, *, generation: int | None = None) -> Blob:
        """One download; the generation comes from the response's x-goog-generation header,
        so the bytes and the generation always belong together."""
        blob = self._bucket.blob(name, generation=generation)
        with self.guard.call("get"), translated(f"object {name}"):
            data = blob.download_as_bytes(timeout=CALL_TIMEOUT_S, checksum="md5", retry=RETRY)
        return Blob(name, data, int(blob.generation or generation or 0), dict(blob.metadata or {}))

    def list_objects(self, prefix: str = "") -> list[BlobInfo]:
        with self.guard.call("list"), translated(f"list {prefix}"):
            blobs = list(
                self._client.list_blobs(
                    self._bucket, prefix=prefix, timeout=CALL_TIMEOUT_S, retry=RETRY
                )
            )
        return [_info(b) for b in blobs]

    def head(self, name: str) -> BlobInfo:
        with self.guard.call("head"), translated(f"object {name}"):
            blob = self._bucket.get_blob(name, timeout=CALL_TIMEOUT_S, retry=RETRY)
        if blob is None:
            raise NotFound(f"object {name} not found")
        return _info(blob)

    def versions(self, name: str) -> list[BlobInfo]:
        with self.guard.call("versions"), translated(f"versions of {name}"):
            blobs = list(
                self._client.list_blobs(
                    self._bucket,
                    prefix=name,
                    # A string, not True: fake-gcs-server only understands "true" (GCS takes both).
                    versions="true",
                    timeout=CALL_TIMEOUT_S,
                    retry=RETRY,
                )
            )
        found = [_info(b) for b in blobs if b.name == name]
        return sorted(found, key=lambda b: b.generation, reverse=True)

    def delete(self, name: str, *, generation: int | None = None) -> None:
        with self.guard.call("delete"), translated(f"object {name}"):
            try:
                self._bucket.delete_blob(
                    name, generation=generation, timeout=CALL_TIMEOUT_S, retry=RETRY
                )
            except gexc.NotFound:
                return

    def ping(self) -> None:
        with self.guard.call("ping"), translated(f"bucket {self.bucket_name}"):
            self._client.get_bucket(self.bucket_name, timeout=5.0, retry=RETRY)


def _info(blob: storage.Blob) -> BlobInfo:
    return BlobInfo(
        name=blob.name,
        generation=int(blob.generation or 0),
        size=int(blob.size or 0),
        updated=blob.updated,
        metadata=dict(blob.metadata or {}),
    )
