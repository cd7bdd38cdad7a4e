"""The simulator under test: one subprocess on a free loopback port for this directory; every
test resets it first (harness.run_sim)."""

from tests.simulator.harness import simulator_url

__all__ = ["simulator_url"]
