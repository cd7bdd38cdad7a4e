"""The whatsmeow device store as wagate's auth state: restore before connect, consistent
capture, and the round trip through wagate's encrypted backups giving identical bytes. The
stores are real whatsmeow stores (schema created by the library, see whatsmeow_kit)."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.engines.whatsmeow.store import DeviceStore, NotAStore, check_state
from tests.engine_contract.whatsmeow_kit import blank_store, linked_store
from wagate.adapters.keyring import StaticKeyRing
from wagate.services.backups import SessionBackups, open_sealed, seal

KEYS = StaticKeyRing(f"k1:{base64.b64encode(os.urandom(32)).decode()}")


@pytest.fixture
def linked(tmp_path: Path) -> bytes:
    return linked_store(tmp_path / "made.db")


def test_capture_seal_open_restore_capture_gives_identical_bytes(
    tmp_path: Path, linked: bytes
) -> None:
    first = DeviceStore(tmp_path / "a" / "ses-1.db")
    first.restore(linked)
    captured = first.capture()
    assert captured is not None and captured == linked
    sealed = seal(KEYS, "ten-1", "ses-1", captured)
    assert captured not in sealed  # what leaves the runner is ciphertext
    second = DeviceStore(tmp_path / "b" / "ses-1.db")
    second.restore(open_sealed(KEYS, "ten-1", "ses-1", sealed))
    assert second.capture() == captured
    first.close()
    second.close()


@pytest.mark.integration
def test_the_round_trip_through_session_backups_in_hybrid_mode_is_byte_identical(
    tmp_path: Path, linked: bytes, blobs: Any
) -> None:
    """The path the supervisor takes: engine state → SessionBackups.save (AES-GCM, local disk
    and the bucket) → restore on another instance → the engine's store → capture."""
    store = DeviceStore(tmp_path / "runner-1" / "ses-1.db")
    store.restore(linked)
    store.record_sent("3EB0A", "WA1", datetime.now(UTC))  # a change made while connected
    state = store.capture()
    assert state is not None
    backups = SessionBackups(blobs, KEYS, "hybrid", tmp_path / "runner-1" / "backups")
    backups.save("ten-1", "ses-1", state, expected_generation=0)
    fresh_instance = SessionBackups(blobs, KEYS, "hybrid", tmp_path / "runner-2" / "backups")
    restored = fresh_instance.restore("ten-1", "ses-1")
    assert restored is not None and restored.state == state
    again = DeviceStore(tmp_path / "runner-2" / "ses-1.db")
    again.restore(restored.state)
    assert again.capture() == state
    assert again.sent("3EB0A") is not None  # the sent-id ledger travels with the store
    store.close()
    again.close()


def test_the_plaintext_store_is_readable_by_the_runner_user_only(
    tmp_path: Path, linked: bytes
) -> None:
    store = DeviceStore(tmp_path / "state" / "whatsmeow" / "ses-1.db")
    store.restore(linked)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "state",
    [b"", b"\x00 not an auth state", b'{"jid": "simulator credentials"}', b"SQLite format 3\x00"],
    ids=["empty", "garbage", "another engine's", "truncated sqlite"],
)
def test_bytes_that_are_not_a_whatsmeow_store_are_refused(tmp_path: Path, state: bytes) -> None:
    store = DeviceStore(tmp_path / "ses-1.db")
    with pytest.raises(NotAStore):
        store.restore(state)
    assert not store.path.exists()


def test_a_store_without_a_linked_device_is_refused_and_never_captured(tmp_path: Path) -> None:
    blank = blank_store(tmp_path / "blank.db").read_bytes()
    with pytest.raises(NotAStore, match="no linked device"):
        check_state(blank, tmp_path / "scratch")
    # A store being paired (or just logged out) must never replace a good backup.
    store = DeviceStore(tmp_path / "blank.db")
    assert store.capture() is None
    store.close()


def test_a_failed_restore_leaves_the_previous_store_in_place(tmp_path: Path, linked: bytes) -> None:
    store = DeviceStore(tmp_path / "ses-1.db")
    store.restore(linked)
    with pytest.raises(NotAStore):
        store.restore(b"garbage")
    assert store.capture() == linked
    store.close()


def test_restoring_nothing_starts_a_blank_device(tmp_path: Path, linked: bytes) -> None:
    store = DeviceStore(tmp_path / "ses-1.db")
    store.restore(linked)
    store.restore(None)
    assert not store.path.exists()


def test_changed_sees_commits_of_another_connection(tmp_path: Path, linked: bytes) -> None:
    store = DeviceStore(tmp_path / "ses-1.db")
    store.restore(linked)
    assert store.changed()  # the first poll after a restore always captures
    assert not store.changed()
    other = sqlite3.connect(store.path)  # as whatsmeow's own connection would
    other.execute("UPDATE whatsmeow_device SET push_name = 'renamed'")
    other.commit()
    other.close()
    assert store.changed()
    captured = store.capture()
    assert captured is not None and captured != linked
    assert not store.changed()
    store.close()


def test_the_sent_id_ledger_maps_both_ways(tmp_path: Path, linked: bytes) -> None:
    store = DeviceStore(tmp_path / "ses-1.db")
    store.restore(linked)
    assert store.sent("3EB0A") is None
    assert store.wagate_ids(("WA1",)) == ("WA1",)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    store.record_sent("3EB0A", "WA1", when)
    assert store.changed()  # our own writes are captured too
    assert store.sent("3EB0A") == ("WA1", when)
    assert store.wagate_ids(("WA1", "WAPHONE")) == ("3EB0A", "WAPHONE")
    assert store.is_ours("3EB0A") == store.is_ours("WA1") == "WA1"
    assert store.is_ours("WAPHONE") is None
    store.close()
