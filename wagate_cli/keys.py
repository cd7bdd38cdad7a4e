"""`wagate keys rotate`: re-encrypt session backups and tenants' webhook secrets with the key
ring's current (first) key.

Run it after every component has the new ring (`k2:…,k1:…`): each backup still sealed with an
older key is opened and sealed again with the current one, written with a generation
precondition (a concurrent writer always wins; `conflict` means run it again). Running it twice
changes nothing the second time.

Backups of sessions a runner is running are left to that runner: it is the only writer of a
live session's backup (it preconditions its next write on the generation it last wrote, so a
rewrite behind its back would make that write fail), and every backup it writes uses the
current key. They are listed, with the key they still use, so the operator sees what remains.

Webhook signing secrets are sealed with the same ring; each is opened and sealed again inside a
transaction on its tenant document. An old key may leave the ring only once this command
reports nothing left on it (`still_needed`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import typer

from wagate.contracts import BackupInfo, SessionDoc, TenantDoc
from wagate.domain.sessions import DesiredState, SessionState
from wagate.errors import WagateError
from wagate.services.backups import OBJECT_PREFIX, parse_object_name, reencrypt_live
from wagate.services.webhooks import reseal_secret, sealed_key_id
from wagate_cli.context import Operator, connect
from wagate_cli.output import (
    JSON_OPTION,
    OperatorTyper,
    emit_json,
    in_parallel,
    out,
    table,
    wants_json,
)

app = OperatorTyper(help="The backup key ring.")

DOC_BATCH = 300
NOT_RUNNING = (SessionState.STOPPED, SessionState.LOGGED_OUT, SessionState.FAILED)


@dataclass
class Rotation:
    tenant_id: str
    session_id: str
    outcome: str  # rotated | current | live | unreadable | conflict | missing | error
    previous_key_id: str | None = None
    key_id: str | None = None
    detail: str = ""


def held_by_a_runner(doc: SessionDoc | None) -> bool:
    return doc is not None and doc.desired == DesiredState.RUNNING and doc.state not in NOT_RUNNING


def _docs(op: Operator, ids: list[str]) -> dict[str, SessionDoc]:
    found: dict[str, SessionDoc] = {}
    for start in range(0, len(ids), DOC_BATCH):
        found.update({d.id: d for d in op.session_docs.get_many(ids[start : start + DOC_BATCH])})
    return found


def reseal_webhook_secrets(op: Operator, tenant: str | None, dry_run: bool) -> list[Rotation]:
    """Every tenant's sealed webhook secret on the current key (a transaction per tenant, so a
    secret set meanwhile is never overwritten by the old one)."""
    keyring = op.keyring
    tenants = [t for t in op.tenants.list() if tenant is None or t.id == tenant]
    results: list[Rotation] = []
    for t in tenants:
        if t.webhook_secret_sealed is None:
            continue
        previous = sealed_key_id(t.webhook_secret_sealed)
        try:
            if dry_run:
                resealed = reseal_secret(keyring, t.id, t.webhook_secret_sealed)
            else:

                def reseal(doc: TenantDoc) -> TenantDoc:
                    sealed = doc.webhook_secret_sealed
                    fresh = reseal_secret(keyring, doc.id, sealed) if sealed else None
                    return doc.model_copy(update={"webhook_secret_sealed": fresh or sealed})

                before = t.webhook_secret_sealed
                after = op.tenant_docs.update(t.id, reseal).webhook_secret_sealed
                resealed = after if after != before else None
        except WagateError as e:
            results.append(Rotation(t.id, "-", "unreadable", previous, detail=e.message))
            continue
        outcome = "current" if resealed is None else "rotated"
        results.append(Rotation(t.id, "-", outcome, previous, keyring.current_id))
    return results


@app.command("rotate")
def rotate(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be rotated"),
    tenant: str | None = typer.Option(
        None, "--tenant", metavar="TENANT_ID", help="Only this tenant's backups"
    ),
    workers: int = typer.Option(16, "--workers", min=1, max=128, help="Parallel rewrites"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-encrypt every backup not on the current key (idempotent)."""
    wants_json(as_json)
    op = connect()
    keyring = op.keyring
    bucket = op.backup_bucket
    listed = [
        (info, parsed)
        for info in bucket.list_objects(OBJECT_PREFIX + (f"{tenant}/" if tenant else ""))
        if (parsed := parse_object_name(info.name)) is not None
    ]
    docs = _docs(op, [session_id for _, (_, session_id) in listed])
    current = keyring.current_id

    def one(item: Any) -> Rotation:
        info, (tenant_id, session_id) = item
        doc = docs.get(session_id)
        listed_key = info.metadata.get("key_id")
        if held_by_a_runner(doc):
            outcome = "current" if listed_key == current else "live"
            return Rotation(tenant_id, session_id, outcome, listed_key, listed_key)
        try:
            done = reencrypt_live(bucket, keyring, tenant_id, session_id, dry_run=dry_run)
        except WagateError as e:
            return Rotation(tenant_id, session_id, "error", detail=e.message)
        if done.outcome == "rotated" and not dry_run and doc is not None and done.sha256:
            info_now = BackupInfo(
                generation=done.generation,
                key_id=current,
                sha256=done.sha256,
                at=op.clock.now(),
            )
            try:
                op.session_docs.update(
                    doc.id, lambda d: d.model_copy(update={"last_backup": info_now})
                )
            except WagateError as e:
                return Rotation(
                    tenant_id, session_id, "rotated", done.previous_key_id, current, e.message
                )
        return Rotation(
            tenant_id, session_id, done.outcome, done.previous_key_id, done.key_id, done.detail
        )

    results = in_parallel(
        listed,
        one,
        workers=workers,
        description="checking keys" if dry_run else "re-encrypting backups",
        show_progress=not as_json,
    )
    counts = Counter(r.outcome for r in results)
    secrets = reseal_webhook_secrets(op, tenant, dry_run)
    secret_counts = Counter(r.outcome for r in secrets)
    left_behind = {"live", "unreadable", "conflict", "error", *(["rotated"] if dry_run else [])}
    still_needed = Counter(
        r.previous_key_id or "?" for r in [*results, *secrets] if r.outcome in left_behind
    )
    summary: dict[str, Any] = {
        "current_key_id": current,
        "dry_run": dry_run,
        "total": len(results),
        "counts": dict(counts),
        "live_by_key": dict(
            Counter(r.previous_key_id or "?" for r in results if r.outcome == "live")
        ),
        "webhook_secrets": dict(secret_counts),
        "still_needed": {k: n for k, n in still_needed.items() if k != current},
        "problems": [
            asdict(r)
            for r in [*results, *secrets]
            if r.outcome in ("unreadable", "conflict", "error")
        ],
    }
    if as_json:
        emit_json(summary)
    else:
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        out.print(
            f"{verb} {counts['rotated']} of {len(results)} backup(s) with key {current}; "
            f"{counts['current']} already on it"
        )
        if counts["live"]:
            keys = ", ".join(f"{k} {v}" for k, v in summary["live_by_key"].items())
            out.print(
                f"{counts['live']} backup(s) of running sessions still use an older key ({keys}): "
                "their runner re-encrypts each on its next backup"
            )
        verb_secrets = "would re-seal" if dry_run else "re-sealed"
        out.print(
            f"{verb_secrets} {secret_counts['rotated']} webhook secret(s); "
            f"{secret_counts['current']} already on key {current}"
        )
        if summary["still_needed"]:
            keys = ", ".join(f"{k} ({n})" for k, n in summary["still_needed"].items())
            out.print(f"keep these keys in the ring for now: {keys}")
        if summary["problems"]:
            out.print(
                table(
                    "needs attention",
                    ["session", "tenant", "outcome", "detail"],
                    [
                        [p["session_id"], p["tenant_id"], p["outcome"], p["detail"]]
                        for p in summary["problems"]
                    ],
                )
            )
    if summary["problems"]:
        raise typer.Exit(1)
