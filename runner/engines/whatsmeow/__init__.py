"""The real WhatsApp engine: whatsmeow (tulir/whatsmeow) through neonize's bundled Go library.

- engine.py        the engine the runner builds (settings, one connection per session)
- connection.py    one socket: connect, send, pair, log out, the host's events
- host_process.py  the adapter's side of one host process: start, requests and replies, stop
- auth_state.py    the device store on disk kept in step with the backed-up auth state
- host.py          the child program that holds one socket with neonize
- reasons.py       the library's connection events → the reason code a socket closes with
- inbound.py       the library's messages, history sync and receipts → wagate's events
- outbound.py      wagate's message content → the library's outgoing message
- store.py         the session's SQLite device store: restore, consistent capture, sent-id ledger
- wire.py          the frames between the two processes

docs/engines.md says what it supports, how to pair a real phone, and its known limits.
"""

from runner.engines.outgoing import BucketMedia, MediaSource
from runner.engines.whatsmeow.connection import WhatsmeowConnection
from runner.engines.whatsmeow.engine import WhatsmeowEngine

__all__ = ["BucketMedia", "MediaSource", "WhatsmeowConnection", "WhatsmeowEngine"]
