"""The fleet helpers behind `backup restore` and `keys rotate` (wagate.services.backups): a
writer that gets there between their read and their write always wins."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from wagate.adapters.keyring import StaticKeyRing
from wagate.adapters.memory import MemoryBlobStore
from wagate.ports import Blob
from wagate.services.backups import (
    SessionBackups,
    key_id_of,
    parse_object_name,
    put_back,
    reencrypt_live,
    seal,
)


def ring(*ids: str) -> StaticKeyRing:
    return StaticKeyRing(",".join(f"{i}:{base64.b64encode(os.urandom(32)).decode()}" for i in ids))


class RacingBlobStore(MemoryBlobStore):
    """Another writer saves the object right after each read."""

    def __init__(self, keys: StaticKeyRing) -> None:
        super().__init__()
        self.keys = keys
        self.race = False

    def get(self, name: str, *, generation: int | None = None) -> Blob:
        try:
            return super().get(name, generation=generation)
        finally:
            if self.race:
                self.race = False
                self.put(name, seal(self.keys, "t", "s", b"the owner's newer state"))


def test_object_names_of_other_things_in_the_bucket_are_ignored() -> None:
    assert parse_object_name("sessions/ten_1/ses_2/auth.wgb") == ("ten_1", "ses_2")
    for other in ("sessions/ten_1/auth.wgb", "media/x", "sessions//ses/auth.wgb", "x/t/s/auth.wgb"):
        assert parse_object_name(other) is None


def test_rotation_loses_to_a_concurrent_writer_and_says_so(tmp_path: Path) -> None:
    old = ring("k1")
    both = StaticKeyRing(f"k2:{base64.b64encode(os.urandom(32)).decode()},k1:{_key(old, 'k1')}")
    blobs: Any = RacingBlobStore(both)  # the owner already has the new ring
    SessionBackups(blobs, old, "cloud", tmp_path).save("t", "s", b"state", expected_generation=0)
    blobs.race = True
    result = reencrypt_live(blobs, both, "t", "s")
    assert result.outcome == "conflict"
    restored = SessionBackups(blobs, both, "cloud", tmp_path).restore("t", "s")
    assert restored is not None and restored.state == b"the owner's newer state"  # untouched
    assert key_id_of(blobs.get(SessionBackups.object_name("t", "s")).data) == "k2"
    assert reencrypt_live(blobs, both, "t", "s").outcome == "current"


def test_put_back_never_overwrites_a_backup_written_after_it_looked(tmp_path: Path) -> None:
    keys = ring("k1")
    blobs: Any = RacingBlobStore(keys)
    exported = seal(keys, "t", "s", b"exported state")
    blobs.race = True  # the owner writes between our read (nothing there) and our write
    assert put_back(blobs, keys, "t", "s", exported).outcome == "conflict"
    restored = SessionBackups(blobs, keys, "cloud", tmp_path).restore("t", "s")
    assert restored is not None and restored.state == b"the owner's newer state"


def _key(keys: StaticKeyRing, key_id: str) -> str:
    return base64.b64encode(keys.key(key_id)).decode()
