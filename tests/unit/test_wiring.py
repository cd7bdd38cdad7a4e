"""wagate.wiring: what every program (functions, runner, CLI) accepts of its settings."""

from __future__ import annotations

import base64

import pytest

from wagate import wiring
from wagate.adapters import tasks
from wagate.config import Settings

KEYS = "k1:" + base64.b64encode(bytes(32)).decode()


def settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("account", [None, ""])
def test_the_cloud_needs_a_service_account_to_sign_tasks(account: str | None) -> None:
    with pytest.raises(wiring.MissingSetting) as raised:
        wiring.task_auth(settings(env="cloud", tasks_service_account=account))
    assert raised.value.setting == "WAGATE_TASKS_SERVICE_ACCOUNT"


@pytest.mark.parametrize("secret", [None, ""])
def test_local_tasks_need_a_non_empty_internal_secret(secret: str | None) -> None:
    with pytest.raises(wiring.MissingSetting) as raised:
        wiring.task_auth(settings(env="local", internal_secret=secret))
    assert raised.value.setting == "WAGATE_INTERNAL_SECRET"
    assert "WAGATE_INTERNAL_SECRET is required" in str(raised.value)


def test_tasks_sign_with_the_account_in_the_cloud_and_the_secret_locally() -> None:
    cloud = settings(env="cloud", tasks_service_account="invoker@p.iam.gserviceaccount.com")
    assert wiring.task_auth(cloud) == tasks.OidcAuth("invoker@p.iam.gserviceaccount.com")
    local = settings(env="local", internal_secret="s3cret")
    assert wiring.task_auth(local) == tasks.SharedSecretAuth("s3cret")


@pytest.mark.parametrize("keys", [None, ""])
def test_a_missing_key_ring_names_its_setting(keys: str | None) -> None:
    with pytest.raises(wiring.MissingSetting) as raised:
        wiring.keyring(settings(backup_keys=keys))
    assert raised.value.setting == "WAGATE_BACKUP_KEYS"


def test_the_key_ring_is_read_from_the_settings() -> None:
    ring = wiring.keyring(settings(backup_keys=KEYS))
    assert ring.current_id == "k1"


def test_every_bucket_shares_one_client_and_one_breaker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # nothing is called
    buckets = wiring.Buckets(settings(backup_bucket="b-backups", media_bucket="b-media"))
    assert not buckets.in_use
    backups, media = buckets.backups(), buckets.media()
    assert buckets.in_use
    assert (backups.bucket_name, media.bucket_name) == ("b-backups", "b-media")
    assert backups.guard is media.guard is buckets.guard
    assert backups._client is media._client
