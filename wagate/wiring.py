"""Builds the core's objects from one Settings, for every program's composition root
(functions/app.py, runner/__main__.py, wagate_cli/context.py): one mapping per setting, so the
programs cannot drift apart."""

from __future__ import annotations

from datetime import timedelta

from wagate.config import Settings
from wagate.services.maintenance import Retention


def retention_of(s: Settings) -> Retention:
    """Maintenance retention (the sweeper's hourly pass and `wagate cleanup`)."""
    return Retention(
        inbound=timedelta(days=s.retention_inbound_days),
        message_bodies=timedelta(days=s.retention_message_body_days),
        key_max_age=timedelta(days=s.key_max_age_days),
    )
