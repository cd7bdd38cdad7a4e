"""The egress address table and policy (wagate.domain.egress_policy), and the guard's
resolution step with an injected resolver: no test here opens a connection."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from wagate.adapters.egress import EgressGuard, literal_address
from wagate.config import Settings
from wagate.domain.egress_policy import (
    EgressPolicy,
    EgressRefused,
    parse_allow_hosts,
    refusal,
)

REFUSED = {
    # IPv4
    "0.0.0.0": "unspecified",
    "0.1.2.3": "unspecified",
    "10.0.0.1": "private",
    "10.255.255.255": "private",
    "100.64.0.1": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT",
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "169.254.0.1": "link-local",
    "169.254.169.254": "metadata",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.0.0.8": "IETF",
    "192.0.2.1": "documentation",
    "192.88.99.1": "6to4 relay",
    "192.168.1.1": "private",
    "198.18.0.1": "benchmarking",
    "198.51.100.7": "documentation",
    "203.0.113.9": "documentation",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "broadcast",
    # IPv6
    "::": "unspecified",
    "::1": "loopback",
    "fc00::1": "unique-local",
    "fd12:3456:789a::1": "unique-local",
    "fd00:ec2::254": "metadata",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    "febf::1": "link-local",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "ff05::1:3": "multicast",
    "100::1": "discard",
    "2001:db8::1": "documentation",
    "2001::1": "IETF",  # Teredo
    "64:ff9b:1::1": "local-use NAT64",
    "4000::1": "reserved",  # outside 2000::/3
    # IPv6 forms of refused IPv4 addresses
    "::ffff:127.0.0.1": "IPv6 form of a loopback",
    "::ffff:7f00:1": "IPv6 form of a loopback",
    "::ffff:10.1.2.3": "IPv6 form of a private",
    "::ffff:169.254.169.254": "metadata",
    "::ffff:100.64.0.1": "IPv6 form of a carrier-grade NAT",
    "::127.0.0.1": "IPv6 form of a loopback",  # IPv4-compatible
    "::ffff:0:192.168.0.1": "IPv6 form of a private",  # IPv4-translated
    "64:ff9b::127.0.0.1": "IPv6 form of a loopback",  # NAT64
    "64:ff9b::a9fe:a9fe": "metadata",
    "2002:7f00:1::": "IPv6 form of a loopback",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1": "metadata",
    "2002:c0a8:0101::1": "IPv6 form of a private",
}

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "169.253.255.255",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81c::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED.items()))
def test_the_address_table_refuses_non_public_addresses(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", PUBLIC)
def test_the_address_table_lets_public_addresses_through(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


CLOUD = EgressPolicy(https_only=True)
LOCAL_OPEN = EgressPolicy(https_only=False, allow_private=True)


def test_the_cloud_policy_accepts_only_https() -> None:
    CLOUD.check_target("https", "example.com", 443, field="url")
    with pytest.raises(EgressRefused, match="https") as refused:
        CLOUD.check_target("http", "example.com", 80, field="webhook_url")
    assert refused.value.field == "webhook_url"
    with pytest.raises(EgressRefused):
        LOCAL_OPEN.check_target("ftp", "example.com", 21, field="url")
    LOCAL_OPEN.check_target("http", "example.com", 80, field="url")


@pytest.mark.parametrize(
    "name", ["metadata.google.internal", "METADATA.google.internal.", "metadata", "metadata.goog"]
)
def test_the_metadata_server_is_refused_by_name_even_when_private_is_allowed(name: str) -> None:
    with pytest.raises(EgressRefused, match="metadata"):
        LOCAL_OPEN.check_target("http", name, 80, field="url")


def test_the_metadata_address_is_refused_even_when_private_is_allowed() -> None:
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254"):
        with pytest.raises(EgressRefused, match="metadata"):
            LOCAL_OPEN.check_address("h", 80, ipaddress.ip_address(address), field="url")
    LOCAL_OPEN.check_address("h", 80, ipaddress.ip_address("127.0.0.1"), field="url")
    LOCAL_OPEN.check_address("h", 80, ipaddress.ip_address("10.0.0.1"), field="url")


def test_localhost_names_are_refused_unless_private_is_allowed() -> None:
    for name in ("localhost", "LocalHost.", "api.localhost"):
        with pytest.raises(EgressRefused, match="loopback"):
            CLOUD.check_target("https", name, 443, field="url")
        LOCAL_OPEN.check_target("http", name, 80, field="url")


def test_the_allow_list_is_exact_host_and_port() -> None:
    policy = EgressPolicy(https_only=False, allow_hosts=parse_allow_hosts("Hooks.corp:8443"))
    private = ipaddress.ip_address("10.1.2.3")
    policy.check_address("hooks.corp", 8443, private, field="url")
    policy.check_address("HOOKS.corp.", 8443, private, field="url")
    with pytest.raises(EgressRefused):
        policy.check_address("hooks.corp", 8444, private, field="url")
    with pytest.raises(EgressRefused):
        policy.check_address("other.corp", 8443, private, field="url")


def test_allow_hosts_parsing() -> None:
    assert parse_allow_hosts("") == frozenset()
    assert parse_allow_hosts(" a:1 , B.example:443,[::1]:80") == {"a:1", "b.example:443", "::1:80"}
    for bad in ("nohost", "a:", ":80", "a:http", "a:0", "a:70000"):
        with pytest.raises(ValueError, match="host:port"):
            parse_allow_hosts(bad)


class FakeDns:
    """An injected resolver: names map to address literals; nothing is looked up."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise OSError(f"{host}: name does not resolve")
        return self.table[host]


def test_the_guard_refuses_a_name_when_any_of_its_addresses_is_refused() -> None:
    dns = FakeDns({"mixed.example": ["93.184.216.34", "10.0.0.5"], "ok.example": ["8.8.8.8"]})
    guard = EgressGuard(EgressPolicy(https_only=True), dns)
    assert guard.addresses(httpx.URL("https://ok.example/a")) == ["8.8.8.8"]
    with pytest.raises(EgressRefused, match=r"10\.0\.0\.5"):
        guard.addresses(httpx.URL("https://mixed.example/a"))
    assert dns.asked == [("ok.example", 443), ("mixed.example", 443)]


def test_the_guard_resolves_the_port_of_the_url() -> None:
    dns = FakeDns({"ok.example": ["8.8.8.8"]})
    EgressGuard(EgressPolicy(https_only=False), dns).addresses(httpx.URL("http://ok.example:81"))
    assert dns.asked == [("ok.example", 81)]


def test_api_check_refuses_a_name_resolving_to_a_private_address() -> None:
    dns = FakeDns({"rebind.example": ["127.0.0.1"], "public.example": ["8.8.4.4"]})
    guard = EgressGuard(EgressPolicy(https_only=True), dns)
    guard.check_url("https://public.example/hook", field="webhook_url")
    with pytest.raises(EgressRefused, match="loopback") as refused:
        guard.check_url("https://rebind.example/hook", field="webhook_url")
    assert refused.value.field == "webhook_url"


def test_api_check_lets_an_unresolvable_name_through_for_the_connect_time_check() -> None:
    guard = EgressGuard(EgressPolicy(https_only=True), FakeDns({}))
    guard.check_url("https://not-yet-in-dns.example/hook", field="url")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://127.1/x",  # short form
        "http://2130706433/x",  # 127.0.0.1 as one number
        "http://0x7f.0.0.1/x",  # hex
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://169.254.169.254/computeMetadata/v1/",
        "http://2852039166/",  # 169.254.169.254 as one number
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://localhost:8070/media",
    ],
)
def test_api_check_refuses_literal_and_obfuscated_private_hosts_without_dns(url: str) -> None:
    dns = FakeDns({})
    guard = EgressGuard(EgressPolicy(https_only=False), dns)
    with pytest.raises(EgressRefused):
        guard.check_url(url, field="content.url")
    assert all(host not in ("127.1", "2130706433", "0x7f.0.0.1") for host, _ in dns.asked)


def test_api_check_with_private_allowed_does_no_lookup_but_still_refuses_metadata() -> None:
    dns = FakeDns({})
    guard = EgressGuard(LOCAL_OPEN, dns)
    guard.check_url("http://127.0.0.1:9/x", field="url")
    guard.check_url("http://hooks.example.com/in", field="url")
    with pytest.raises(EgressRefused, match="metadata"):
        guard.check_url("http://169.254.169.254/", field="url")
    assert dns.asked == []


def test_api_check_refuses_malformed_urls_with_the_field() -> None:
    guard = EgressGuard(CLOUD, FakeDns({}))
    for url in ("https://", "https://exa mple.com/", "mailto:a@b.c", "https://[::1/"):
        with pytest.raises(EgressRefused) as refused:
            guard.check_url(url, field="url")
        assert refused.value.field == "url"


def test_literal_address_accepts_every_numeric_form_and_no_names() -> None:
    assert literal_address("127.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("::ffff:7f00:1") == ipaddress.ip_address("::ffff:127.0.0.1")
    assert literal_address("example.com") is None


def test_the_guard_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # A session-long stack fixture may have put the local stack's environment in place.
    for name in ("WAGATE_EGRESS_ALLOW_PRIVATE", "WAGATE_EGRESS_ALLOW_HOSTS", "WAGATE_ENV"):
        monkeypatch.delenv(name, raising=False)
    cloud = EgressGuard.from_settings(Settings(env="cloud", egress_allow_hosts="a.corp:8443"))
    assert cloud.policy == EgressPolicy(
        https_only=True, allow_private=False, allow_hosts=frozenset({"a.corp:8443"})
    )
    local = EgressGuard.from_settings(Settings(env="local", egress_allow_private=True))
    assert local.policy == EgressPolicy(https_only=False, allow_private=True)
    assert Settings.model_fields["egress_allow_private"].default is False


def test_international_names_are_resolved_in_their_idna_form() -> None:
    dns = FakeDns({"xn--bcher-kva.example": ["8.8.8.8"]})
    guard = EgressGuard(CLOUD, dns)
    assert guard.addresses(httpx.URL("https://bücher.example/")) == ["8.8.8.8"]


def test_pinning_keeps_the_host_header_and_the_tls_name() -> None:
    guard = EgressGuard(CLOUD, FakeDns({}))
    request = httpx.Request("GET", "https://media.example:8443/a.jpg?x=1")
    pinned = guard.pinned(request, "93.184.216.34")
    assert str(pinned.url) == "https://93.184.216.34:8443/a.jpg?x=1"
    assert pinned.headers["Host"] == "media.example:8443"
    assert pinned.extensions["sni_hostname"] == "media.example"
    v6 = guard.pinned(httpx.Request("GET", "http://media.example/"), "2606:4700::1")
    assert str(v6.url) == "http://[2606:4700::1]/" and "sni_hostname" not in v6.extensions
