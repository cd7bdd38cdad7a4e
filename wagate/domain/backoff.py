"""Exponential backoff with full jitter (AWS architecture blog's "full jitter").

delay(n) = uniform(0, min(cap, base * 2**n)). Pure: the random source is injected.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 2.0
    cap: float = 300.0

    def ceiling(self, attempt: int) -> float:
        # attempt counts from 0; the exponent is capped to avoid float overflow.
        return float(min(self.cap, self.base * 2 ** min(attempt, 30)))

    def delay(self, attempt: int, rand: Callable[[float, float], float] = random.uniform) -> float:
        return rand(0.0, self.ceiling(attempt))
