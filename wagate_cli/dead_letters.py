"""`wagate dead-letters list|retry`: messages that ended `dead`, across tenants.

retry re-enqueues through Outbox.retry_dead (the same code as `POST /v1/messages:retry-dead`),
once per tenant that has matching dead letters, with the same session/time/reason filters.
"""

from __future__ import annotations

from datetime import datetime

import typer

from wagate.contracts import MessageDoc
from wagate.ports import Where
from wagate_cli.context import Operator, connect
from wagate_cli.output import (
    JSON_OPTION,
    OperatorTyper,
    age,
    emit_json,
    out,
    parse_since,
    table,
    wants_json,
)
from wagate_cli.sessions import find_session

app = OperatorTyper(help="Dead letters: list them, retry them.")

TENANT = typer.Option(None, "--tenant", metavar="TENANT_ID", help="Only this tenant's dead letters")
SESSION = typer.Option(
    None, "--session", metavar="SESSION_ID", help="Only this session's dead letters"
)
REASON = typer.Option(
    None, "--reason", metavar="TEXT", help="Only those whose reason contains this text"
)
SINCE = typer.Option(
    None, "--since", metavar="WHEN", help="Only those that died after: 30m, 2h, 7d or ISO time"
)
SCAN_LIMIT = 5000  # dead letters read when filters apply client-side (reason, time + tenant)
LIMIT = typer.Option(500, "--limit", min=1, max=5000, help="At most this many")


def matching(
    op: Operator,
    *,
    tenant: str | None,
    session: str | None,
    reason: str | None,
    since: datetime | None,
    limit: int,
) -> list[MessageDoc]:
    """Dead letters by the filters, oldest death first (index: status + updated_at)."""
    where = [Where("status", "==", "dead")]
    if session is not None:
        doc = find_session(op, session)
        tenant = tenant or doc.tenant_id
        where.append(Where("session_id", "==", session))
    if tenant is not None:
        where.append(Where("tenant_id", "==", tenant))
    order_by = None
    filtered_here = bool(reason)
    if since is not None and session is None and tenant is None:
        where.append(Where("updated_at", ">=", since))
        order_by = "updated_at"
    elif since is not None:
        filtered_here = True
    docs = op.message_docs.query(
        where, order_by=order_by, limit=SCAN_LIMIT if filtered_here else limit
    )
    docs = [
        d
        for d in docs
        if (since is None or d.updated_at >= since)
        and (not reason or reason in (d.dead_reason or ""))
    ]
    docs.sort(key=lambda d: d.updated_at)
    return docs[:limit]


@app.command("list")
def list_dead(
    tenant: str | None = TENANT,
    session: str | None = SESSION,
    reason: str | None = REASON,
    since: str | None = SINCE,
    limit: int = LIMIT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Dead letters with their reason and last error."""
    wants_json(as_json)
    when = parse_since(since)
    op = connect()
    docs = matching(op, tenant=tenant, session=session, reason=reason, since=when, limit=limit)
    if as_json:
        emit_json(
            {
                "items": [
                    {
                        "id": d.id,
                        "tenant_id": d.tenant_id,
                        "session_id": d.session_id,
                        "to": d.to,
                        "kind": d.content.type,
                        "attempts": d.attempts,
                        "dead_reason": d.dead_reason,
                        "died_at": d.status_times.get("dead", d.updated_at),
                        "created_at": d.created_at,
                    }
                    for d in docs
                ],
                "count": len(docs),
            }
        )
        return
    out.print(
        table(
            f"{len(docs)} dead letter(s)",
            ["message", "session", "to", "kind", "attempts", "died", "reason"],
            [
                [
                    d.id,
                    d.session_id,
                    d.to,
                    d.content.type,
                    d.attempts,
                    age(d.status_times.get("dead", d.updated_at)),
                    d.dead_reason,
                ]
                for d in docs
            ],
        )
    )


@app.command("retry")
def retry_dead(
    tenant: str | None = TENANT,
    session: str | None = SESSION,
    reason: str | None = REASON,
    since: str | None = SINCE,
    limit: int = LIMIT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be retried"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-enqueue dead letters (fresh attempts, a new task generation)."""
    wants_json(as_json)
    when = parse_since(since)
    op = connect()
    docs = matching(op, tenant=tenant, session=session, reason=reason, since=when, limit=limit)
    tenants = sorted({d.tenant_id for d in docs})
    retried: list[str] = []
    if not dry_run:
        for tenant_id in tenants:
            retried += op.outbox.retry_dead(
                tenant_id,
                session_id=session,
                since=when,
                reason=reason,
                limit=limit,
            )
    result = {
        "matched": [d.id for d in docs],
        "retried": retried,
        "dry_run": dry_run,
    }
    if as_json:
        emit_json(result)
        return
    if dry_run:
        out.print(f"{len(docs)} dead letter(s) would be retried")
    else:
        out.print(f"{len(retried)} of {len(docs)} dead letter(s) re-enqueued")
