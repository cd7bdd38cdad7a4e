"""The Baileys engine: WhatsApp's multi-device protocol by @whiskeysockets/baileys (Node), many
sessions per worker process (docs/engines.md)."""

from runner.engines.baileys.engine import BaileysEngine

__all__ = ["BaileysEngine"]
