"""The simulated engine: wagate's `WhatsAppEngine` port over the simulator's websocket protocol
(simulator/PROTOCOL.md), used by the demo, the tests, chaos runs and benchmarks.

- engine.py      the engine: one shared aiohttp ClientSession, what each device has consumed
- connection.py  one linked device's socket: connect, send, pair, log out, the reading task
- frames.py      the protocol's frames ↔ wagate's events and errors (pure functions)

Written against the protocol document rather than by importing the simulator package: the
simulator and the runner are separate programs (import-linter keeps them apart).

Behaviour the supervisor can rely on:
- `connect()` returns once the outcome is known — the first QR (no credentials), Connected, or
  a close — and never raises for a refusal or an unreachable server: every outcome, including a
  failed handshake, is an event (`Disconnected(503)` for an unreachable or refusing server,
  `Disconnected(408)` for a timeout).
- `events()` yields until `close()`; each socket close yields exactly one `Disconnected(reason)`
  (close code 4000+reason → reason; keep-alive timeout → 408; any other close → 428). After it,
  `connect()` may be called again on the same connection, which keeps the newest credentials.
  `close()` itself yields no Disconnected: the caller knows why it closed.
- Server acks resolve the waiting `send()` *and* are yielded as `MessageAck`, so an ack that
  arrives after `send()` timed out is still seen.
- Receipts and inbound messages are acknowledged to the server only after the consumer has
  taken them from `events()` (it asks for the next one), so a crash before they were handled
  means WhatsApp delivers them again. They may therefore repeat; consumers dedupe by id.

Memory (SPEC §9: ≤ 1 MB per idle connected session): every connection of an engine shares one
aiohttp ClientSession; a connection is one websocket, one reading task, one small queue and its
credentials dict. Keep-alive is aiohttp's own websocket ping timer, not a task per connection.
"""

from runner.engines.simulated.connection import SimulatedConnection
from runner.engines.simulated.engine import SimulatedEngine

__all__ = ["SimulatedConnection", "SimulatedEngine"]
