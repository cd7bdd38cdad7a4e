"""Runs the synchronous store/blob/queue ports from asyncio on a bounded thread pool.

The Google clients are synchronous and thread-safe; a pool of a few dozen threads keeps many
store calls in flight without blocking the event loop that serves the sockets.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Offload:
    def __init__(self, workers: int = 48) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="io")

    async def __call__(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
