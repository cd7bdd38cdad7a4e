"""The real WhatsApp engine: whatsmeow (tulir/whatsmeow) through neonize's bundled Go library.

- engine.py   the adapter the runner uses (never imports neonize itself)
- host.py     the child program that holds one socket with neonize
- mapping.py  the library's events and errors → wagate's events and reason codes
- store.py    the session's SQLite device store: restore, consistent capture, sent-id ledger
- wire.py     the frames between the two processes

docs/engines.md says what it supports, how to pair a real phone, and its known limits.
"""

from runner.engines.outgoing import BucketMedia, MediaSource
from runner.engines.whatsmeow.engine import WhatsmeowConnection, WhatsmeowEngine

__all__ = ["BucketMedia", "MediaSource", "WhatsmeowConnection", "WhatsmeowEngine"]
