"""Publishes tenants' events to Pub/Sub topics (docs/events.md, "Pub/Sub"), with an ordering
key, through Pub/Sub's REST API: `POST /v1/{topic}:publish`.

Hand-written over httpx rather than google-cloud-pubsub: wagate publishes one message at a
time, in order, and waits for it; that is one HTTP call, while the client library brings gRPC
streaming, background batching threads and OpenTelemetry into the runner for it. Locally the
calls go to the emulator named by PUBSUB_EMULATOR_HOST (as Google's libraries do), without
credentials; in the cloud to the region's endpoint (ordering keys hold within a region) with
the runner's service account token (google-auth).
"""

from __future__ import annotations

import base64
import os
import threading
from typing import Any

import httpx

from wagate.adapters.guard import DependencyGuard
from wagate.errors import DependencyUnavailable, ValidationFailed

TIMEOUT_S = 10.0
SCOPE = "https://www.googleapis.com/auth/pubsub"


class PubSubPublisher:
    def __init__(
        self, base_url: str, *, credentials: Any = None, guard: DependencyGuard | None = None
    ) -> None:
        self._base = base_url.rstrip("/")
        self._credentials = credentials
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=TIMEOUT_S, trust_env=False)
        self.guard = guard or DependencyGuard("pubsub")

    @classmethod
    def from_environment(cls, region: str) -> PubSubPublisher:
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        if emulator:
            return cls(f"http://{emulator}")
        import google.auth

        credentials, _ = google.auth.default(scopes=[SCOPE])
        return cls(f"https://{region}-pubsub.googleapis.com", credentials=credentials)

    def publish(
        self, topic: str, data: bytes, attributes: dict[str, str], ordering_key: str
    ) -> str:
        """Publish one message; returns its Pub/Sub message id. Raises DependencyUnavailable
        when Pub/Sub does not take it (the caller retries), ValidationFailed for a topic that
        does not exist or may not be published to."""
        message = {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "orderingKey": ordering_key,
        }
        with self.guard.call("publish"):
            try:
                response = self._client.post(
                    f"{self._base}/v1/{topic}:publish",
                    json={"messages": [message]},
                    headers=self._auth_headers(),
                )
            except httpx.HTTPError as e:
                raise DependencyUnavailable(f"pubsub unreachable: {e}", retry_after=5) from e
        if response.status_code in (403, 404):
            raise ValidationFailed(
                f"cannot publish to {topic}: {response.status_code}", field="pubsub_topic"
            )
        if response.status_code != 200:
            raise DependencyUnavailable(
                f"pubsub answered {response.status_code}: {response.text[:200]}", retry_after=5
            )
        ids: list[str] = response.json()["messageIds"]
        return ids[0]

    def _auth_headers(self) -> dict[str, str]:
        if self._credentials is None:
            return {}
        with self._lock:
            if not self._credentials.valid:
                from google.auth.transport.requests import Request

                self._credentials.refresh(Request())
            return {"Authorization": f"Bearer {self._credentials.token}"}
