"""Creates, on the emulators, what Terraform creates in the cloud: the buckets and queues."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.protobuf import duration_pb2

from wagate.adapters import storage as gcs
from wagate.adapters import tasks
from wagate.config import Settings
from wagate.queues import QueueSpec, all_queues


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _seconds(value: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(value), nanos=int((value % 1) * 1e9))


def queue_proto(path: str, spec: QueueSpec) -> tasks_v2.Queue:
    return tasks_v2.Queue(
        name=path,
        rate_limits=tasks_v2.RateLimits(
            max_dispatches_per_second=spec.max_dispatches_per_second,
            max_concurrent_dispatches=spec.max_concurrent_dispatches,
        ),
        retry_config=tasks_v2.RetryConfig(
            max_attempts=spec.max_attempts,
            min_backoff=_seconds(spec.min_backoff_s),
            max_backoff=_seconds(spec.max_backoff_s),
            max_doublings=spec.max_doublings,
        ),
    )


def ensure_queues(client: tasks_v2.CloudTasksClient, settings: Settings) -> list[str]:
    parent = f"projects/{settings.project_id}/locations/{settings.region}"
    names = []
    for spec in all_queues(settings.queue_prefix, settings.shard_count):
        path = f"{parent}/queues/{spec.name}"
        try:
            client.create_queue(parent=parent, queue=queue_proto(path, spec))
        except gexc.AlreadyExists:
            client.update_queue(queue=queue_proto(path, spec))
        names.append(spec.name)
    return names


def provision(env: Mapping[str, str], shards: int) -> None:
    with environment(env):
        settings = Settings()
        client = gcs.make_client(settings.project_id)
        for bucket in (settings.backup_bucket, settings.media_bucket):
            gcs.GcsBlobStore(client, bucket).ensure_bucket(versioning=True)
        ensure_queues(tasks.make_client(settings.tasks_endpoint), settings)
