"""`wagate backup export|restore`: every session's encrypted backup to a local folder and back.

export copies each live backup object as it is (sealed: nothing is decrypted, so the export is
as safe to keep as the bucket) and writes `manifest.json` with each file's sha256.

restore is the emergency path (a wiped or damaged bucket): each file is checked against the
manifest and must authenticate with the key ring (`--dry-run` stops there and reports what it
would do); then it is written back with a generation precondition, so a backup written since
the export is never overwritten (`--force` replaces valid live backups too); last, every session
whose backup came back and that should run but is not connected gets a `recover` control task,
so its runner reconnects it. Runners read a backup when they start a session (on takeover,
restart, or a recover of a session they do not run); a session a runner already runs keeps the
credentials it holds.

Sessions that were logged out are skipped: their backup was wiped on purpose. Files whose
session no longer exists are skipped too.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, Field, ValidationError

from wagate.contracts import SessionDoc
from wagate.domain.sessions import DesiredState, SessionState
from wagate.errors import NotFound, ValidationFailed, WagateError
from wagate.services.backups import (
    OBJECT_PREFIX,
    BackupCorrupt,
    key_id_of,
    parse_object_name,
    put_back,
    verify_sealed,
)
from wagate_cli.context import Operator, connect
from wagate_cli.output import (
    JSON_OPTION,
    OperatorTyper,
    emit_json,
    err,
    in_parallel,
    out,
    table,
    wants_json,
)

app = OperatorTyper(help="Export all encrypted session backups to a folder; restore them.")

MANIFEST = "manifest.json"
FORMAT = "wagate-backup-export/1"
WORKERS = typer.Option(16, "--workers", min=1, max=128, help="Parallel transfers")
TENANT = typer.Option(None, "--tenant", metavar="TENANT_ID", help="Only this tenant's sessions")
DOC_BATCH = 300


class ManifestEntry(BaseModel):
    tenant_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")
    session_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int
    generation: int
    key_id: str | None


class Manifest(BaseModel):
    format: str
    created_at: datetime
    project: str
    bucket: str
    backups: list[ManifestEntry]


def _sessions_by_id(op: Operator, session_ids: list[str]) -> dict[str, SessionDoc]:
    found: dict[str, SessionDoc] = {}
    for start in range(0, len(session_ids), DOC_BATCH):
        for doc in op.session_docs.get_many(session_ids[start : start + DOC_BATCH]):
            found[doc.id] = doc
    return found


# ---------------------------------------------------------------- export


@dataclass
class Exported:
    tenant_id: str
    session_id: str
    outcome: str  # exported | vanished | error
    entry: ManifestEntry | None = None
    detail: str = ""


def _relative_file(tenant_id: str, session_id: str) -> str:
    return f"backups/{tenant_id}/{session_id}.wgb"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


@app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(help="Folder to write (created; must be empty)")],
    tenant: str | None = TENANT,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export there"),
    workers: int = WORKERS,
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy every session's current encrypted backup (never decrypted) + a sha256 manifest."""
    wants_json(as_json)
    if directory.exists() and not directory.is_dir():
        raise ValidationFailed(f"{directory} is not a folder", field="directory")
    if directory.exists() and any(directory.iterdir()) and not overwrite:
        raise ValidationFailed(
            f"{directory} is not empty (use --overwrite to replace an earlier export)",
            field="directory",
        )
    op = connect()
    bucket = op.backup_bucket
    prefix = OBJECT_PREFIX + (f"{tenant}/" if tenant else "")
    names = [
        (info.name, parsed)
        for info in bucket.list_objects(prefix)
        if (parsed := parse_object_name(info.name)) is not None
    ]
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def one(item: tuple[str, tuple[str, str]]) -> Exported:
        name, (tenant_id, session_id) = item
        try:
            blob = bucket.get(name)
        except NotFound:
            return Exported(tenant_id, session_id, "vanished", detail="deleted meanwhile")
        except WagateError as e:
            return Exported(tenant_id, session_id, "error", detail=e.message)
        try:
            key_id: str | None = key_id_of(blob.data)
        except BackupCorrupt:
            key_id = None  # exported anyway: restore will refuse it, visibly
        relative = _relative_file(tenant_id, session_id)
        _write_private(directory / relative, blob.data)
        entry = ManifestEntry(
            tenant_id=tenant_id,
            session_id=session_id,
            file=relative,
            sha256=hashlib.sha256(blob.data).hexdigest(),
            size=len(blob.data),
            generation=blob.generation,
            key_id=key_id,
        )
        return Exported(tenant_id, session_id, "exported", entry)

    results = in_parallel(
        names, one, workers=workers, description="exporting backups", show_progress=not as_json
    )
    entries = [r.entry for r in results if r.entry is not None]
    manifest = Manifest(
        format=FORMAT,
        created_at=datetime.now(UTC),
        project=op.settings.project_id,
        bucket=op.settings.backup_bucket,
        backups=sorted(entries, key=lambda e: (e.tenant_id, e.session_id)),
    )
    # The manifest is written last: a folder without one is an export that did not finish.
    _write_private(directory / MANIFEST, manifest.model_dump_json(indent=2).encode())
    counts = Counter(r.outcome for r in results)
    summary: dict[str, Any] = {
        "directory": str(directory),
        "exported": counts["exported"],
        "vanished": counts["vanished"],
        "errors": [
            {"session_id": r.session_id, "tenant_id": r.tenant_id, "detail": r.detail}
            for r in results
            if r.outcome == "error"
        ],
        "bytes": sum(e.size for e in entries),
        "key_ids": dict(Counter(e.key_id or "unreadable" for e in entries)),
        "unreadable": sum(1 for e in entries if e.key_id is None),
    }
    if as_json:
        emit_json(summary)
    else:
        out.print(
            f"exported {summary['exported']} backup(s), {summary['bytes']} bytes, to {directory} "
            f"(keys: {', '.join(f'{k} {v}' for k, v in summary['key_ids'].items()) or 'none'})"
        )
        for r in results:
            if r.outcome == "error":
                err.print(f"[red]{r.session_id}: {r.detail}[/]")
    if counts["error"]:
        raise typer.Exit(1)


# ---------------------------------------------------------------- restore


@dataclass
class RestoreResult:
    tenant_id: str
    session_id: str
    outcome: str
    detail: str = ""
    generation: int = 0
    recover: str | None = None  # requested | failed: … | None (not needed)
    notes: list[str] = field(default_factory=list)


FAILED_OUTCOMES = {"corrupt", "missing_file", "conflict", "error"}
DRY_RUN_OUTCOMES = {"restored": "would_restore", "replaced": "would_replace"}


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(
            f"{path} not found: not a wagate backup export (or an unfinished one)",
            field="directory",
        ) from None
    except OSError as e:
        raise ValidationFailed(f"cannot read {path}: {e.strerror}", field="directory") from None
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as e:
        raise ValidationFailed(
            f"{path} is not a valid manifest: {e.errors()[0]['msg']}", field="manifest"
        ) from None
    if manifest.format != FORMAT:
        raise ValidationFailed(f"unknown export format {manifest.format!r}", field="manifest")
    return manifest


def _needs_recover(doc: SessionDoc) -> bool:
    return doc.desired == DesiredState.RUNNING and doc.state != SessionState.CONNECTED


@app.command("restore")
def restore(
    directory: Annotated[Path, typer.Argument(help="A folder written by `backup export`")],
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only verify every backup and report what would be done"
    ),
    tenant: str | None = TENANT,
    session: Annotated[
        list[str] | None,
        typer.Option("--session", metavar="SESSION_ID", help="Only these sessions (repeatable)"),
    ] = None,
    force: bool = typer.Option(
        False, "--force", help="Also replace live backups that are valid (newer than the export)"
    ),
    recover: bool = typer.Option(
        True, "--recover/--no-recover", help="Ask runners to reconnect restored sessions"
    ),
    workers: int = WORKERS,
    as_json: bool = JSON_OPTION,
) -> None:
    """Emergency restore: verify each exported backup, write it back, ask runners to reconnect."""
    wants_json(as_json)
    manifest = read_manifest(directory)
    entries = [
        e
        for e in manifest.backups
        if (tenant is None or e.tenant_id == tenant) and (not session or e.session_id in session)
    ]
    op = connect()
    keyring = op.keyring
    bucket = op.backup_bucket
    # Built before the workers start, so a missing task setting fails before any write.
    sessions = op.sessions if recover and not dry_run else None
    docs = _sessions_by_id(op, [e.session_id for e in entries])
    root = directory.resolve()

    def one(entry: ManifestEntry) -> RestoreResult:
        result = RestoreResult(entry.tenant_id, entry.session_id, "verified")
        try:
            path = (directory / entry.file).resolve(strict=True)
            path.relative_to(root)  # the manifest may only name files inside the export
            sealed = path.read_bytes()
        except (OSError, ValueError):
            result.outcome, result.detail = "missing_file", f"{entry.file} is missing"
            return result
        if hashlib.sha256(sealed).hexdigest() != entry.sha256:
            result.outcome, result.detail = "corrupt", "file changed since the export (sha256)"
            return result
        try:
            verify_sealed(keyring, entry.tenant_id, entry.session_id, sealed)
        except BackupCorrupt as e:
            result.outcome, result.detail = "corrupt", e.message
            return result
        doc = docs.get(entry.session_id)
        if doc is None or doc.tenant_id != entry.tenant_id:
            result.outcome, result.detail = "skipped", "no such session any more"
            return result
        if doc.state == SessionState.LOGGED_OUT:
            result.outcome, result.detail = "skipped", "logged out: its backup was wiped on purpose"
            return result
        try:
            done = put_back(
                bucket,
                keyring,
                entry.tenant_id,
                entry.session_id,
                sealed,
                force=force,
                dry_run=dry_run,
            )
        except WagateError as e:
            result.outcome, result.detail = "error", e.message
            return result
        result.outcome = (
            DRY_RUN_OUTCOMES.get(done.outcome, done.outcome) if dry_run else done.outcome
        )
        result.detail, result.generation = done.detail, done.generation
        if recover and done.outcome in ("restored", "replaced") and _needs_recover(doc):
            if sessions is None:
                result.recover = "would request"
            else:
                try:
                    sessions.control(doc, "recover")
                    result.recover = "requested"
                except WagateError as e:
                    result.recover = f"failed: {e.message}"
        return result

    results = in_parallel(
        entries,
        one,
        workers=workers,
        description="verifying backups" if dry_run else "restoring backups",
        show_progress=not as_json,
    )
    counts = Counter(r.outcome for r in results)
    summary: dict[str, Any] = {
        "directory": str(directory),
        "dry_run": dry_run,
        "total": len(results),
        "counts": dict(counts),
        "recover_requested": sum(1 for r in results if r.recover == "requested"),
        "recover_failed": sum(1 for r in results if (r.recover or "").startswith("failed")),
        "problems": [
            asdict(r)
            for r in results
            if r.outcome in FAILED_OUTCOMES or (r.recover or "").startswith("failed")
        ],
        "results": [asdict(r) for r in results],
    }
    if as_json:
        emit_json(summary)
    else:
        _print_restore(summary, results, dry_run)
    if summary["problems"]:
        raise typer.Exit(1)


def _print_restore(summary: dict[str, Any], results: list[RestoreResult], dry_run: bool) -> None:
    verb = "would be" if dry_run else "were"
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())) or "nothing"
    out.print(f"{summary['total']} backup(s) in the export: {counts}")
    if dry_run:
        out.print("(dry run: every backup was verified against the manifest and the key ring)")
    recovered = summary["recover_requested"]
    if recovered:
        out.print(f"{recovered} session(s) {verb} asked to reconnect")
    bad = [r for r in results if r.outcome in FAILED_OUTCOMES or r.outcome == "skipped"]
    if bad:
        out.print(
            table(
                "needs attention" if summary["problems"] else "skipped",
                ["session", "tenant", "outcome", "detail"],
                [[r.session_id, r.tenant_id, r.outcome, r.detail] for r in bad],
            )
        )
