"""The simulator's tunables, set by the CLI and changed at run time through the control API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

HISTORY_KEPT = 1000  # messages remembered per account for history sync


class Settings(BaseModel):
    """The simulator's tunables; the CLI sets the defaults, `POST /control/config` changes them
    at run time and `POST /control/reset` restores the defaults."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    receipt_delay_ms: float = Field(200.0, ge=0, description="Send → delivery receipt")
    read_delay_ms: float = Field(1000.0, ge=0, description="Send → read receipt")
    read_receipts: bool = Field(True, description="Handsets send read receipts at all")
    qr_interval_s: float = Field(20.0, gt=0, description="Lifetime of one QR payload")
    qr_attempts: int = Field(6, ge=1, description="QR payloads before pairing gives up (408)")
    idle_timeout_s: float = Field(90.0, gt=0, description="Drop sockets silent for this long")
    hello_timeout_s: float = Field(20.0, gt=0, description="Wait for the first frame")
    key_update_every: int = Field(100, ge=0, description="Key update every N sends (0: never)")
    history_limit: int = Field(50, ge=0, le=HISTORY_KEPT, description="Messages per history sync")
    outbox_limit: int = Field(50_000, ge=1, description="Queued frames kept per offline device")
    ack_latency_ms: float = Field(0.0, ge=0, description="Default server-ack latency")
    ack_jitter_ms: float = Field(0.0, ge=0, description="Default server-ack jitter (±)")
    rate_limit_per_s: float | None = Field(None, gt=0, description="Default sends/s per account")
    rate_limit_burst: int = Field(20, ge=1, description="Default burst per account")
    not_on_whatsapp_prefix: str = Field("999", description="Numbers with it are not on WhatsApp")
