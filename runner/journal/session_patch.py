"""A session patch: the fields of sessions/{id} a supervisor set, journaled with the fence of
the lease it held then, and how one is applied to the document."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from wagate.contracts import SessionDoc


class SessionPatch(BaseModel):
    """Fields of sessions/{id} the supervisor set, fenced by the lease it held then."""

    session_id: str
    fence_shard: int
    fence_token: int
    fields: dict[str, Any]  # JSON values; validated against SessionDoc when applied
    at: datetime


def apply_session_patch(doc: SessionDoc, patch: SessionPatch) -> SessionDoc:
    return SessionDoc.model_validate({**doc.model_dump(), **patch.fields, "updated_at": patch.at})


def session_patcher(patch: SessionPatch) -> Callable[[SessionDoc], SessionDoc]:
    return lambda doc: apply_session_patch(doc, patch)
