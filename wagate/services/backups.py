"""Encrypted session auth-state backups (SPEC §4).

Format v1: b"WGB1" | key-id length (1 byte) | key id | 96-bit random nonce | AES-256-GCM
ciphertext+tag. The AAD binds the format version, tenant and session, so a backup cannot be
replayed onto another session. Writes carry a generation precondition, so two writers can
never overwrite each other; bucket versioning keeps history, and a backup that fails to
decrypt is never loaded: older versions are tried instead, and the caller raises an alert.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wagate.errors import NotFound, StaleGeneration, Unprocessable, WagateError
from wagate.ports import BlobStore, KeyRing

MAGIC = b"WGB1"
FORMAT_VERSION = 1
NONCE_BYTES = 12


class BackupCorrupt(Unprocessable):
    code = "backup_corrupt"


def aad(tenant_id: str, session_id: str) -> bytes:
    return f"wagate-backup/v{FORMAT_VERSION}/{tenant_id}/{session_id}".encode()


def seal(keyring: KeyRing, tenant_id: str, session_id: str, plaintext: bytes) -> bytes:
    key_id = keyring.current_id
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keyring.key(key_id)).encrypt(nonce, plaintext, aad(tenant_id, session_id))
    kid = key_id.encode()
    return MAGIC + bytes([len(kid)]) + kid + nonce + sealed


def key_id_of(blob: bytes) -> str:
    if len(blob) < len(MAGIC) + 1 or not blob.startswith(MAGIC):
        raise BackupCorrupt("not a wagate backup (bad magic)")
    length = blob[len(MAGIC)]
    return blob[len(MAGIC) + 1 : len(MAGIC) + 1 + length].decode(errors="replace")


def open_sealed(keyring: KeyRing, tenant_id: str, session_id: str, blob: bytes) -> bytes:
    key_id = key_id_of(blob)
    start = len(MAGIC) + 1 + len(key_id.encode())
    nonce, sealed = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
    if len(nonce) != NONCE_BYTES or len(sealed) < 16:
        raise BackupCorrupt("truncated backup")
    try:
        key = keyring.key(key_id)
    except NotFound:
        raise BackupCorrupt(f"backup key {key_id} is not in the key ring") from None
    try:
        return AESGCM(key).decrypt(nonce, sealed, aad(tenant_id, session_id))
    except InvalidTag:
        raise BackupCorrupt("backup failed authentication (tampered or wrong session)") from None


@dataclass(frozen=True)
class Restored:
    state: bytes
    generation: int
    key_id: str
    sha256: str
    fell_back: bool  # True if the newest version was refused and an older one was used
    refused: tuple[int, ...] = ()


@dataclass(frozen=True)
class Saved:
    generation: int
    key_id: str
    sha256: str


class SessionBackups:
    """Save/restore one session's auth state; `mode` is cloud | hybrid | local."""

    def __init__(
        self, blobs: BlobStore | None, keyring: KeyRing, mode: str, state_dir: Path
    ) -> None:
        if mode != "local" and blobs is None:
            raise ValueError("cloud and hybrid persistence need a blob store")
        self._blobs = blobs
        self._keyring = keyring
        self._mode = mode
        self._dir = state_dir

    @property
    def current_key_id(self) -> str:
        """The key new backups are sealed with (the key ring's first)."""
        return self._keyring.current_id

    @staticmethod
    def object_name(tenant_id: str, session_id: str) -> str:
        return f"sessions/{tenant_id}/{session_id}/auth.wgb"

    def _local_path(self, session_id: str) -> Path:
        return self._dir / f"{session_id}.wgb"

    def save(
        self, tenant_id: str, session_id: str, state: bytes, *, expected_generation: int | None
    ) -> Saved:
        """expected_generation: the generation we last wrote or restored (0 = none yet)."""
        sealed = seal(self._keyring, tenant_id, session_id, state)
        digest = hashlib.sha256(state).hexdigest()
        generation = 0
        if self._mode in ("hybrid", "local"):
            self._write_local(session_id, sealed)
        if self._mode in ("hybrid", "cloud"):
            assert self._blobs is not None
            generation = self._blobs.put(
                self.object_name(tenant_id, session_id),
                sealed,
                if_generation_match=expected_generation,
                metadata={"key_id": self._keyring.current_id, "format": str(FORMAT_VERSION)},
            )
        return Saved(generation, self._keyring.current_id, digest)

    def _write_local(self, session_id: str, sealed: bytes) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._local_path(session_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(sealed)
        os.replace(tmp, path)  # atomic: a crash leaves the old or the new file, never half

    def restore(self, tenant_id: str, session_id: str) -> Restored | None:
        """The newest backup that authenticates; None if there is none at all."""
        if self._mode == "local":
            return self._restore_local(tenant_id, session_id)
        assert self._blobs is not None
        name = self.object_name(tenant_id, session_id)
        try:
            live = self._blobs.get(name)
        except NotFound:
            return None  # never written, or wiped: older versions are history, not state
        except WagateError:
            if self._mode == "hybrid":  # Cloud Storage unreachable: the local copy will do
                return self._restore_local(tenant_id, session_id)
            raise
        candidates = [live.generation]
        try:
            open_sealed(self._keyring, tenant_id, session_id, live.data)
        except BackupCorrupt:
            # Only now is history needed: the newest version that authenticates wins.
            candidates += [
                v.generation for v in self._blobs.versions(name) if v.generation != live.generation
            ]
        refused: list[int] = []
        for generation in candidates:
            blob = live if live.generation == generation else None
            if blob is None:
                try:
                    blob = self._blobs.get(name, generation=generation)
                except NotFound:
                    continue
            try:
                state = open_sealed(self._keyring, tenant_id, session_id, blob.data)
            except BackupCorrupt:
                refused.append(generation)
                continue
            return Restored(
                state=state,
                # Future writes must be preconditioned on the *live* generation.
                generation=live.generation,
                key_id=key_id_of(blob.data),
                sha256=hashlib.sha256(state).hexdigest(),
                fell_back=bool(refused),
                refused=tuple(refused),
            )
        if refused:
            raise BackupCorrupt(
                f"no backup version of {session_id} authenticates (refused {len(refused)})"
            )
        return None

    def _restore_local(self, tenant_id: str, session_id: str) -> Restored | None:
        path = self._local_path(session_id)
        if not path.exists():
            return None
        blob = path.read_bytes()
        state = open_sealed(self._keyring, tenant_id, session_id, blob)
        return Restored(state, 0, key_id_of(blob), hashlib.sha256(state).hexdigest(), False)

    def wipe(self, tenant_id: str, session_id: str) -> None:
        """Logout: delete every version, local and remote."""
        self._local_path(session_id).unlink(missing_ok=True)
        if self._blobs is None:
            return
        name = self.object_name(tenant_id, session_id)
        for version in self._blobs.versions(name):
            self._blobs.delete(name, generation=version.generation)
        self._blobs.delete(name)

    def rotate(self, tenant_id: str, session_id: str) -> Saved | None:
        """Re-encrypt with the current key if the live backup uses an older one."""
        restored = self.restore(tenant_id, session_id)
        if restored is None or restored.key_id == self._keyring.current_id:
            return None
        try:
            return self.save(
                tenant_id, session_id, restored.state, expected_generation=restored.generation
            )
        except StaleGeneration:
            return None  # the owner wrote a fresh backup meanwhile: already on the new key


# ---------------------------------------------------------------- fleet operations
# Whole-bucket operations for operators (export, emergency restore, key rotation). They work on
# the sealed bytes: a backup is opened only to prove it authenticates or to re-seal it, and its
# plaintext never leaves memory.

OBJECT_PREFIX = "sessions/"


def parse_object_name(name: str) -> tuple[str, str] | None:
    """(tenant id, session id) of a live backup object, None for anything else in the bucket."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "sessions" or parts[3] != "auth.wgb":
        return None
    if not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def verify_sealed(keyring: KeyRing, tenant_id: str, session_id: str, blob: bytes) -> str:
    """The sha256 of the state a backup holds; BackupCorrupt if it does not authenticate."""
    return hashlib.sha256(open_sealed(keyring, tenant_id, session_id, blob)).hexdigest()


@dataclass(frozen=True)
class Reencrypted:
    """What re-encrypting one live backup with the current key did.

    outcome: rotated (re-sealed and written) | current (already on the current key) |
    missing (no live backup) | unreadable (does not authenticate: left alone) |
    conflict (another writer replaced it meanwhile: run again).
    """

    outcome: str
    previous_key_id: str | None = None
    key_id: str | None = None
    generation: int = 0
    sha256: str | None = None  # of the state, as in SessionDoc.last_backup
    detail: str = ""


def reencrypt_live(
    blobs: BlobStore, keyring: KeyRing, tenant_id: str, session_id: str, *, dry_run: bool = False
) -> Reencrypted:
    """Re-seal the live backup with the key ring's current key, preconditioned on the generation
    it was read at, so a concurrent writer always wins. Idempotent: a backup already on the
    current key is not rewritten. Unlike SessionBackups.rotate, a live backup that does not
    authenticate is reported and left alone (restoring an older version is a restore decision,
    not a rotation)."""
    name = SessionBackups.object_name(tenant_id, session_id)
    try:
        live = blobs.get(name)
    except NotFound:
        return Reencrypted("missing")
    try:
        previous = key_id_of(live.data)
    except BackupCorrupt as e:
        return Reencrypted("unreadable", generation=live.generation, detail=e.message)
    if previous == keyring.current_id:
        return Reencrypted("current", previous, previous, live.generation)
    try:
        state = open_sealed(keyring, tenant_id, session_id, live.data)
    except BackupCorrupt as e:
        return Reencrypted("unreadable", previous, generation=live.generation, detail=e.message)
    digest = hashlib.sha256(state).hexdigest()
    if dry_run:
        return Reencrypted("rotated", previous, keyring.current_id, live.generation, digest)
    sealed = seal(keyring, tenant_id, session_id, state)
    try:
        generation = blobs.put(
            name,
            sealed,
            if_generation_match=live.generation,
            metadata={"key_id": keyring.current_id, "format": str(FORMAT_VERSION)},
        )
    except StaleGeneration:
        return Reencrypted("conflict", previous, generation=live.generation)
    return Reencrypted("rotated", previous, keyring.current_id, generation, digest)


@dataclass(frozen=True)
class PutBack:
    """What putting an exported backup back into the bucket did (or would do).

    outcome: restored (there was none) | unchanged (the live one is byte-identical) |
    kept (a different live backup authenticates: it is newer, so it stays unless forced) |
    replaced (the live one did not authenticate, or force) | conflict (another writer won).
    """

    outcome: str
    generation: int = 0
    detail: str = ""


def put_back(
    blobs: BlobStore,
    keyring: KeyRing,
    tenant_id: str,
    session_id: str,
    sealed: bytes,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> PutBack:
    """Write a verified, still-sealed backup back as the live object. Every write carries a
    generation precondition (0 = must not exist), so it never overwrites a backup written after
    it looked."""
    name = SessionBackups.object_name(tenant_id, session_id)
    try:
        live = blobs.get(name)
    except NotFound:
        live = None
    if live is not None and live.data == sealed:
        return PutBack("unchanged", live.generation)
    outcome, detail = "restored", ""
    if live is not None:
        try:
            open_sealed(keyring, tenant_id, session_id, live.data)
            if not force:
                return PutBack(
                    "kept", live.generation, "a different live backup authenticates; kept it"
                )
            outcome, detail = "replaced", "replaced a valid live backup (--force)"
        except BackupCorrupt as e:
            outcome, detail = "replaced", f"live backup refused: {e.message}"
    if dry_run:
        return PutBack(outcome, live.generation if live else 0, detail)
    try:
        generation = blobs.put(
            name,
            sealed,
            if_generation_match=live.generation if live else 0,
            metadata={"key_id": key_id_of(sealed), "format": str(FORMAT_VERSION)},
        )
    except StaleGeneration:
        return PutBack("conflict", detail="another writer replaced the backup meanwhile")
    return PutBack(outcome, generation, detail)
