"""The local stack's port picker never hands out a port twice in one process: CI once gave the
api and the sweeper of one stack the same port, and the api's health check reached the
sweeper."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack import processes
from devstack.processes import LOCALHOST, free_port


def test_free_ports_are_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_free_ports_are_below_the_kernels_ephemeral_range() -> None:
    # A port the kernel picks for a bind to port 0 can be taken by any process before the
    # service it was handed to starts (a Java emulator's internal socket took the api's).
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(free_port() < low for _ in range(50))


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listening:
        listening.bind((LOCALHOST, free_port()))
        listening.listen()
        busy = listening.getsockname()[1]
        # Forget it was handed out and point the picker at it: the bind probe must skip it.
        monkeypatch.setattr(processes, "_HANDED_OUT", set())
        monkeypatch.setattr(processes, "_next_port", processes._PORTS.index(busy))
        assert free_port() != busy
