"""The local stack's port picker never hands out a port twice in one process: CI once gave the
api and the sweeper of one stack the same port, and the api's health check reached the
sweeper."""

from __future__ import annotations

from devstack.processes import free_port


def test_free_ports_are_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
