"""Poll votes (`poll.vote` events): WhatsApp names the chosen options by the SHA-256 of their
names, so the poll this session sent — its message, found by WhatsApp id — turns them back into
names. Every engine reports a vote that way (`poll_vote`: `poll_id`, `selected_hashes`)."""

from __future__ import annotations

from typing import Any

from runner.context import ShardContext
from wagate.contracts import MessageDoc, PollContent, poll_option_hash
from wagate.ports import Where

POLL_VOTE = "poll_vote"  # the kind of an engine's InboundMessage that is a vote


async def named_vote(ctx: ShardContext, session_id: str, content: dict[str, Any]) -> dict[str, Any]:
    """The vote with the poll's wagate message id, question and the chosen options' names (in
    the poll's order); all three null when the poll was not sent through wagate (from the phone
    itself, or pruned) or the engine could not decrypt the vote. Raises DependencyUnavailable
    while the store does not answer."""
    chosen = {str(h) for h in content.get("selected_hashes") or ()}
    found: list[MessageDoc] = await ctx.io(
        ctx.messages.query,
        [Where("session_id", "==", session_id), Where("wa_id", "==", str(content.get("poll_id")))],
        limit=1,
    )
    poll = found[0].content if found else None
    if not isinstance(poll, PollContent) or content.get("selected_hashes") is None:
        return {**content, "poll_message_id": None, "question": None, "options": None}
    named = [o for o in poll.options if poll_option_hash(o) in chosen]
    return {
        **content,
        "poll_message_id": found[0].id,
        "question": poll.question,
        # null when a chosen hash names no option (the poll's words were pruned, docs/events.md)
        "options": named if len(named) == len(chosen) else None,
    }
