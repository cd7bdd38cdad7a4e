"""Where wagate may connect on a user's behalf (media URLs, webhooks): the address table and the
policy around it (SPEC §6 "Egress"). Pure: it judges a scheme, a host name, a port and an IP
address; resolving names and connecting is `wagate.adapters.egress`.

The table is written out rather than taken from `ipaddress`'s `is_global`/`is_private`: those
change between Python versions and call multicast "global"; here every refused range is listed
with the reason a client is told. IPv6 forms that carry an IPv4 address (mapped, compatible,
translated, NAT64, 6to4) are judged by the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from wagate.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = "the cloud metadata server"

# Refused even with allow_private: there is no reason to send a user's request there.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})
# RFC 1123 labels (underscore tolerated, as resolvers do); IPv6 literals are checked apart.
LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*$")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

# (network, reason): IANA's IPv4 special-purpose registry, plus multicast and class E.
V4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)

# IPv6 ranges whose last 32 bits are an IPv4 address: judged by that address.
V6_CARRYING_V4: tuple[ipaddress.IPv6Network, ...] = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::ffff:0:0/96",  # IPv4-mapped
        "::/96",  # IPv4-compatible (deprecated), after :: and ::1 below
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64 well-known prefix
    )
)
V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/23", "an IETF protocol address (Teredo and others)"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
V6_6TO4 = ipaddress.IPv6Network("2002::/16")


class EgressRefused(ValidationFailed):
    """A URL the guard will not connect to; at the API a 400 naming the field."""

    code = "egress_refused"


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public address, or None when it is."""
    if is_metadata(address):
        return METADATA
    if isinstance(address, ipaddress.IPv4Address):
        return next((reason for net, reason in V4_REFUSED if address in net), None)
    address = ipaddress.IPv6Address(address.packed)  # drop a %zone: the table is per address
    for net, reason in V6_REFUSED[:2]:
        if address in net:
            return reason
    carried = carried_v4(address)
    if carried is not None:
        inner = refusal(carried)
        return f"an IPv6 form of {inner}" if inner else None
    for net, reason in V6_REFUSED:
        if address in net:
            return reason
    if address not in V6_GLOBAL_UNICAST:
        return "a reserved address"
    return None


def is_metadata(address: IPAddress) -> bool:
    """The metadata server, in any form (an IPv6 form of 169.254.169.254 too)."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(address.packed)
        carried = carried_v4(address)
        if carried is not None:
            return carried in METADATA_ADDRESSES
    return address in METADATA_ADDRESSES


def carried_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), if any."""
    if any(address in net for net in V6_CARRYING_V4):
        return ipaddress.IPv4Address(address.packed[-4:])
    if address in V6_6TO4:
        return ipaddress.IPv4Address(address.packed[2:6])
    return None


def normalized_host(host: str) -> str:
    """A host as the policy compares it: lower case, no trailing dot, no IPv6 brackets."""
    return host.strip().strip("[]").rstrip(".").lower()


def valid_host(name: str) -> bool:
    """A normalized host that could be connected to: an IPv6 literal or an RFC 1123 name
    (which covers IPv4 literals in every numeric form)."""
    if ":" in name:
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return False
        return True
    return HOST_NAME.match(name) is not None


def parse_allow_hosts(text: str) -> frozenset[str]:
    """`WAGATE_EGRESS_ALLOW_HOSTS`: comma-separated exact `host:port` entries."""
    hosts: set[str] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"WAGATE_EGRESS_ALLOW_HOSTS entry {entry!r} is not host:port")
        hosts.add(f"{normalized_host(host)}:{int(port)}")
    return frozenset(hosts)


@dataclass(frozen=True)
class EgressPolicy:
    """https_only: the cloud. allow_private: the local stack (loopback demo and tests).
    allow_hosts: exact `host:port` exceptions to the address rule (not to https_only)."""

    https_only: bool = True
    allow_private: bool = False
    allow_hosts: frozenset[str] = field(default_factory=frozenset)

    def listed(self, host: str, port: int) -> bool:
        return f"{normalized_host(host)}:{port}" in self.allow_hosts

    def check_target(self, scheme: str, host: str, port: int, *, field: str) -> None:
        """The checks that need no name resolution: scheme, and names that are never public."""
        allowed = ("https",) if self.https_only else ("http", "https")
        if scheme not in allowed:
            raise EgressRefused(f"the URL must use {' or '.join(allowed)}", field=field)
        name = normalized_host(host)
        if not name:
            raise EgressRefused("the URL has no host", field=field)
        if not valid_host(name):
            raise EgressRefused(f"the URL's host {host!r} is not a valid host name", field=field)
        if self.listed(name, port):
            return
        if name in METADATA_NAMES:
            raise EgressRefused(f"the URL points at {METADATA}", field=field)
        if not self.allow_private and (name in LOOPBACK_NAMES or name.endswith(".localhost")):
            raise EgressRefused("the URL points at a loopback address", field=field)

    def check_address(self, host: str, port: int, address: IPAddress, *, field: str) -> None:
        """Raises EgressRefused unless `host:port`, resolved to `address`, may be connected to."""
        if self.listed(host, port):
            return
        reason = refusal(address)
        if reason is None or (self.allow_private and not is_metadata(address)):
            return
        raise EgressRefused(f"the URL's host {host} is {reason} ({address})", field=field)
