"""What the simulator answers to a control request it refuses."""

from __future__ import annotations


class SimulatorError(Exception):
    """A control request the simulator refuses; `status` is its HTTP status."""

    status = 400


class NotFoundError(SimulatorError):
    status = 404
