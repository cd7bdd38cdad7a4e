"""The local stand-in for Cloud Scheduler: POSTs the sweeper's jobs on a fixed period.

In the cloud, Cloud Scheduler calls the sweeper (infra/terraform/modules/wagate/scheduler.tf)
with an OIDC token; locally this small loop does the same with the shared internal secret, so
the local system re-enqueues stuck messages on its own, as the deployed one does. Hand-written:
it is a timer and an HTTP POST, and no emulator of Cloud Scheduler exists on the registries.

    python -m devstack.scheduler --every 60 /sweep /maintenance@3600
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time

import httpx

from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER
from wagate.logs import configure, get_logger

log = get_logger("devstack.scheduler")


def parse_job(spec: str, every_s: float) -> tuple[str, float]:
    """`/path` runs every `every_s`; `/path@SECONDS` has its own period."""
    path, _, period = spec.partition("@")
    return path, float(period) if period else every_s


def run_jobs(sweeper_url: str, secret: str, jobs: list[tuple[str, float]]) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    due = {path: time.monotonic() + period for path, period in jobs}
    with httpx.Client(base_url=sweeper_url, timeout=60) as client:
        while not stop.wait(max(0.0, min(due.values()) - time.monotonic())):
            for path, period in jobs:
                if due[path] > time.monotonic():
                    continue
                due[path] = time.monotonic() + period
                started = time.monotonic()
                try:
                    response = client.post(path, headers={INTERNAL_TOKEN_HEADER: secret})
                    log.info(
                        "scheduled job ran",
                        job=path,
                        status=response.status_code,
                        seconds=round(time.monotonic() - started, 3),
                        result=response.text[:500],
                    )
                except httpx.HTTPError as e:  # the next tick is the retry, as in the cloud
                    log.warning("scheduled job failed", job=path, error=str(e))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="+", help="sweeper paths to POST: /sweep or /path@SECONDS")
    parser.add_argument("--every", type=float, default=60.0, help="period in seconds")
    args = parser.parse_args()
    configure(os.environ.get("WAGATE_LOG_FORMAT", "json"), "INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # each POST is logged as a job run
    secret = os.environ.get("WAGATE_INTERNAL_SECRET", "")
    sweeper_url = os.environ.get("WAGATE_SWEEPER_URL", "http://127.0.0.1:8081")
    jobs = [parse_job(spec, args.every) for spec in args.jobs]
    print(f"scheduler: {', '.join(f'POST {p} every {s}s' for p, s in jobs)}", flush=True)
    run_jobs(sweeper_url, secret, jobs)


if __name__ == "__main__":
    main()
