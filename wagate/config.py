"""All of wagate's settings: one pydantic-settings model, environment prefix WAGATE_.

The Google client libraries read their own emulator variables (FIRESTORE_EMULATOR_HOST,
STORAGE_EMULATOR_HOST); wagate's Cloud Tasks emulator is reached through WAGATE_TASKS_ENDPOINT.
Secrets (admin key, backup keys, internal secret) come from the environment, which Cloud Run
and Cloud Functions fill from Secret Manager.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WAGATE_", extra="ignore")

    # --- where we run
    project_id: str = Field("wagate-local", description="Google Cloud project id")
    region: str = Field("us-central1", description="Region of the queues and services")
    env: Literal["local", "cloud"] = Field("local", description="local = emulators + shared secret")
    log_format: Literal["json", "console"] = Field("json", description="Log renderer")
    log_level: str = Field("INFO", description="Minimum log level")

    # --- Cloud Tasks
    tasks_endpoint: str | None = Field(
        None, description="http://host:port of the Cloud Tasks emulator (unset in the cloud)"
    )
    shard_count: int = Field(1, ge=1, le=1000, description="Number of runner shards")
    sessions_per_shard: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Sessions one shard's runner is sized for; a full shard is never assigned",
    )
    queue_prefix: str = Field(
        "wagate", description="Queues are <prefix>-shard-<n>, <prefix>-webhooks"
    )
    runner_urls: str = Field(
        "http://127.0.0.1:8090",
        description="Comma-separated base URLs of the runners, one per shard, in shard order",
    )
    tasks_service_account: str | None = Field(
        None, description="Service account email Cloud Tasks signs OIDC tokens as (cloud)"
    )
    api_service_account: str | None = Field(
        None,
        description="Runner: the api's service account, whose OIDC tokens may ask /queries (cloud)",
    )
    internal_secret: SecretStr | None = Field(
        None, description="Shared secret for internal endpoints when env=local"
    )

    # --- Cloud Storage
    backup_bucket: str = Field("wagate-backups", description="Bucket of encrypted session backups")
    media_bucket: str = Field("wagate-media", description="Bucket of uploaded media")

    # --- inbound media (docs/messaging.md, "Inbound media")
    inbound_media_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1,
        le=100 * 1024 * 1024,
        description="Received files larger than this are not downloaded (the event says so)",
    )
    inbound_media_attempts: int = Field(
        4, ge=1, le=20, description="Download attempts of a received file before it is given up"
    )
    media_url_ttl_s: int = Field(
        3600, ge=60, le=7 * 24 * 3600, description="Lifetime of the signed URLs in events"
    )
    media_signing_key: SecretStr | None = Field(
        None,
        description="Locally: a service-account JSON key that signs media URLs (the cloud signs "
        "with IAM signBlob as the runner's own account instead)",
    )
    media_url_endpoint: str | None = Field(
        None,
        description="Host signed URLs point at (default: the Storage emulator when "
        "STORAGE_EMULATOR_HOST is set, else https://storage.googleapis.com)",
    )

    # --- runner
    shard_id: int = Field(0, ge=0, description="The shard this runner serves")
    instance_id: str | None = Field(None, description="Lease holder id; defaults to host+pid")
    lease_ttl_s: float = Field(9.0, gt=1, description="Shard lease time to live")
    lease_renew_s: float = Field(3.0, gt=0.1, description="Shard lease renewal period")
    engine: Literal["simulator", "baileys", "whatsmeow"] = Field(
        "simulator", description="WhatsApp engine (docs/engines.md)"
    )
    baileys_url: str = Field(
        "wss://web.whatsapp.com/ws/chat",
        description="engine=baileys: WhatsApp's websocket (a local fake in tests and the demo)",
    )
    baileys_media_url: str = Field(
        "https://mmg.whatsapp.net",
        description="engine=baileys: WhatsApp's media host, where received files are downloaded "
        "(the protocol fake's in tests)",
    )
    baileys_sessions_per_worker: int = Field(
        50, ge=1, le=1000, description="engine=baileys: sockets per Node worker process"
    )
    simulator_url: str = Field("http://127.0.0.1:8070", description="Simulator base URL")
    whatsmeow_proxy: str | None = Field(
        None, description="engine=whatsmeow: proxy for WhatsApp traffic (socks5:// or http://)"
    )
    persistence: Literal["cloud", "hybrid", "local"] = Field(
        "hybrid", description="Where session auth state is kept"
    )
    state_dir: str = Field(".stack/runner-state", description="Local disk for hybrid/local mode")
    backup_keys: SecretStr | None = Field(
        None, description="Key ring 'kid:base64key,kid2:base64key'; the first encrypts"
    )
    backup_debounce_s: float = Field(2.0, ge=0, description="Delay before an on-change backup")
    backup_period_s: float = Field(300.0, gt=0, description="Periodic backup interval")
    send_ack_timeout_s: float = Field(20.0, gt=0, description="Wait for WhatsApp's server ack")
    max_send_attempts: int = Field(10, ge=1, description="Attempts before a message is dead")
    sweep_stuck_after_s: float = Field(
        120.0, gt=0, description="Sweeper: a pending message untouched this long is re-enqueued"
    )
    event_stream_hold_s: float = Field(
        25.0,
        gt=0,
        le=3600,
        description="How long GET /v1/events/stream holds a connection before the client "
        "resumes with Last-Event-ID (below the function's request timeout)",
    )

    # --- operations (docs/operations.md)
    alert_webhook_url: str | None = Field(
        None, description="Operators' webhook: alert opened/resolved notices (sweeper delivers)"
    )
    alert_webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 secret that signs alert notices"
    )
    retention_inbound_days: int = Field(
        30, ge=1, le=3650, description="Maintenance: received messages older than this go"
    )
    retention_message_body_days: int = Field(
        30, ge=1, le=3650, description="Maintenance: content of delivered/read messages goes"
    )
    key_max_age_days: int = Field(
        30, ge=1, le=365, description="Session key material unchanged this long is expired"
    )

    # --- api
    admin_key: SecretStr | None = Field(None, description="Admin API key (tenants, keys)")
    api_url: str = Field("http://127.0.0.1:8080", description="Public base URL of the api")
    sweeper_url: str = Field("http://127.0.0.1:8081", description="Base URL of the sweeper")

    # --- egress guard (docs/security.md): media URLs and webhooks
    egress_allow_private: bool = Field(
        False, description="Allow loopback/private addresses (the local stack sets it)"
    )
    egress_allow_hosts: str = Field(
        "", description="Comma-separated exact host:port exceptions to the address rule"
    )

    def runner_url(self, shard: int) -> str:
        urls = [u.strip().rstrip("/") for u in self.runner_urls.split(",") if u.strip()]
        if shard >= len(urls):
            raise ValueError(f"WAGATE_RUNNER_URLS has {len(urls)} URLs; shard {shard} has none")
        return urls[shard]
