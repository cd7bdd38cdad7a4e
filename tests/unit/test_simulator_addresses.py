"""simulator.protocol: which recipients the simulator understands, LIDs included."""

from __future__ import annotations

import pytest

from simulator.protocol import lid_jid, normalize_address, phone_of_lid


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        ("+15557654321", "15557654321"),
        ("15557654321@s.whatsapp.net", "15557654321"),
        ("15557654321:3@s.whatsapp.net", "15557654321"),
        ("120363041234567-1712345678@g.us", "120363041234567-1712345678@g.us"),
        ("100108903580247@lid", "15557654321"),  # 10^14 + 7 x the number
        ("100108903580247:2@lid", "15557654321"),
        ("100108903580248@lid", None),  # no number has this LID
        ("99@lid", None),
        ("hello", None),
    ],
)
def test_a_recipient_is_canonicalised_to_its_number(raw: str, address: str | None) -> None:
    assert normalize_address(raw) == address


def test_a_numbers_lid_leads_back_to_the_number() -> None:
    lid = lid_jid("15557654321")
    assert lid == "100108903580247@lid"
    assert phone_of_lid(lid.removesuffix("@lid")) == "15557654321"
