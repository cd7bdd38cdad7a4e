"""`wagate tenants …`: what operators do for tenants, checked against the api that serves them."""

from __future__ import annotations

import pytest

from tests.cli.conftest import invoke, run
from tests.e2e.system import System

pytestmark = pytest.mark.integration


def status(system: System, key: str) -> int:
    return system.call("GET", "/v1/sessions", key).status_code


def test_a_tenant_created_by_the_cli_can_call_the_api_and_a_revoked_key_cannot(
    system: System,
) -> None:
    env = system.stack.env
    created = run(env, "tenants", "create", "acme cli", "--json")
    assert created.code == 0, created.stderr
    tenant = created.json()
    assert tenant["api_key"].startswith("wg_live_") and tenant["webhook_secret"] is None
    assert status(system, tenant["api_key"]) == 200

    issued = invoke(env, "tenants", "keys", "issue", tenant["id"], "--json")
    assert issued.code == 0, issued.stderr
    second = issued.json()
    listed = invoke(env, "tenants", "keys", "list", tenant["id"], "--json").json()["items"]
    assert {k["key_id"] for k in listed} == {tenant["key_id"], second["key_id"]}
    assert all("hash" not in k for k in listed)  # only ids and prefixes are shown

    revoked = run(env, "tenants", "keys", "revoke", tenant["id"], second["key_id"], "--json")
    assert revoked.code == 0, revoked.stderr
    assert status(system, second["api_key"]) == 401
    assert status(system, tenant["api_key"]) == 200  # the other key still works


def test_webhook_and_limits_set_by_the_cli_are_what_the_tenant_gets(system: System) -> None:
    env = system.stack.env
    tenant = invoke(env, "tenants", "create", "hooks", "--json").json()
    hooked = invoke(
        env, "tenants", "set-webhook", tenant["id"], "https://example.com/hooks", "--json"
    )
    assert hooked.code == 0, hooked.stderr
    assert hooked.json()["secret"].startswith("whsec_")
    limited = invoke(
        env,
        "tenants",
        "set-limits",
        tenant["id"],
        "--sends-per-minute",
        "7",
        "--max-sessions",
        "9",
        "--json",
    )
    assert limited.code == 0, limited.stderr
    shown = invoke(env, "tenants", "show", tenant["id"], "--json").json()
    assert shown["webhook_url"] == "https://example.com/hooks"
    assert shown["webhook_secret_set"] is True
    assert shown["limits"]["sends_per_minute"] == 7
    assert shown["limits"]["pacing_burst"] == 5  # the others keep their values
    assert shown["limits"]["max_sessions"] == 9 and shown["sessions"] == 0
    listed = invoke(env, "tenants", "list", "--json").json()["items"]
    assert tenant["id"] in {t["id"] for t in listed}

    removed = invoke(env, "tenants", "set-webhook", tenant["id"], "--remove", "--json")
    assert removed.code == 0 and removed.json()["webhook_url"] is None


def test_invalid_limits_and_urls_are_refused_with_the_field_named(system: System) -> None:
    env = system.stack.env
    tenant = invoke(env, "tenants", "create", "strict", "--json").json()
    zero = run(env, "tenants", "set-limits", tenant["id"], "--sends-per-minute", "0")
    assert zero.code == 1
    assert "sends_per_minute" in zero.stderr and "Traceback" not in zero.stderr
    bad_url = invoke(env, "tenants", "set-webhook", tenant["id"], "ftp://example.com", "--json")
    assert bad_url.code == 1
    assert bad_url.json()["error"]["field"] == "url"
    metadata = "http://169.254.169.254/computeMetadata/v1/"  # refused even on loopback stacks
    refused = invoke(env, "tenants", "set-webhook", tenant["id"], metadata, "--json")
    assert refused.code == 1
    assert refused.json()["error"]["field"] == "url"
    assert "metadata" in refused.json()["error"]["message"]
    assert invoke(env, "tenants", "show", tenant["id"], "--json").json()["webhook_url"] is None
    unknown = invoke(env, "tenants", "show", "ten_nope")
    assert unknown.code == 1 and "not found" in unknown.stderr
    # Nothing was changed by the refused calls.
    assert (
        invoke(env, "tenants", "show", tenant["id"], "--json").json()["limits"]["sends_per_minute"]
        == 60
    )
