"""Poll votes from the phone side: a contact who received a poll votes in it. The vote reaches
the poll's sender as WhatsApp delivers one — a `poll_vote` message naming the poll by its id and
the chosen options by the SHA-256 of their names — so the runner maps hashes to names for every
engine alike."""

from __future__ import annotations

import hashlib
from typing import Any

from simulator.errors import NotFoundError, SimulatorError
from simulator.messaging import MessageRules


def option_hash(name: str) -> str:
    """How WhatsApp names a poll option in a vote: the SHA-256 of its name, here in hex."""
    return hashlib.sha256(name.encode()).hexdigest()


class PollRules(MessageRules):
    def vote(
        self,
        to_phone: str,
        voter: str,
        poll_id: str,
        options: list[str],
        wa_id: str | None = None,
        addressing: str = "pn",
    ) -> dict[str, Any]:
        """`voter` votes `options` (an empty list takes the vote back) in the poll `poll_id`
        that the account `to_phone` sent them."""
        sender = self.phone_of(to_phone)
        handset = self.handsets.get(self.address_of(voter))
        polls = [
            m
            for m in (handset.received if handset is not None else ())
            if m["id"] == poll_id and m["kind"] == "poll" and m["from"] == sender
        ]
        if not polls:
            raise NotFoundError(f"{voter} received no poll {poll_id} from {to_phone}")
        poll = polls[0]["content"]
        unknown = [o for o in options if o not in poll.get("options", ())]
        if unknown:
            raise SimulatorError(f"not an option of the poll: {unknown[0]!r}")
        if len(set(options)) > int(poll.get("selectable_count", 1)):
            raise SimulatorError("more options than the poll lets a voter choose")
        content = {"poll_id": poll_id, "selected_hashes": [option_hash(o) for o in options]}
        return self.inbound(to_phone, voter, "poll_vote", content, wa_id, addressing)
