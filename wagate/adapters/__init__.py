"""Adapters: one vendor each, translating vendor exceptions into wagate errors."""
