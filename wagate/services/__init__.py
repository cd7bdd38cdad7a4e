"""Application services: use cases written against the ports only (no vendor, no adapter)."""
