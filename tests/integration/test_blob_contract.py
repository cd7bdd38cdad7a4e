"""The BlobStore contract against the in-memory adapter and fake-gcs-server."""

from __future__ import annotations

import pytest

from wagate.errors import NotFound, StaleGeneration
from wagate.ports import BlobStore

pytestmark = pytest.mark.integration


def test_put_then_get_returns_bytes_and_generation(blobs: BlobStore) -> None:
    generation = blobs.put("s/1", b"\x00\x01secret", if_generation_match=0)
    blob = blobs.get("s/1")
    assert blob.data == b"\x00\x01secret"
    assert blob.generation == generation > 0


def test_stale_generation_upload_is_refused_and_changes_nothing(blobs: BlobStore) -> None:
    first = blobs.put("s/1", b"one", if_generation_match=0)
    second = blobs.put("s/1", b"two", if_generation_match=first)
    with pytest.raises(StaleGeneration):
        blobs.put("s/1", b"stale writer", if_generation_match=first)
    with pytest.raises(StaleGeneration):
        blobs.put("s/1", b"create again", if_generation_match=0)
    assert blobs.get("s/1").data == b"two"
    assert blobs.get("s/1").generation == second


def test_old_versions_stay_readable(blobs: BlobStore) -> None:
    g1 = blobs.put("s/1", b"one")
    g2 = blobs.put("s/1", b"two")
    assert [v.generation for v in blobs.versions("s/1")] == [g2, g1]
    assert blobs.get("s/1", generation=g1).data == b"one"
    blobs.delete("s/1")
    with pytest.raises(NotFound):
        blobs.get("s/1")
    assert blobs.get("s/1", generation=g2).data == b"two"


def test_list_by_prefix(blobs: BlobStore) -> None:
    blobs.put("tenant-a/s1", b"1")
    blobs.put("tenant-a/s2", b"22")
    blobs.put("tenant-b/s3", b"333")
    listed = blobs.list_objects("tenant-a/")
    assert [(b.name, b.size) for b in listed] == [("tenant-a/s1", 1), ("tenant-a/s2", 2)]


def test_missing_object_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFound):
        blobs.get("nope")
    blobs.delete("nope")  # deleting nothing is not an error
