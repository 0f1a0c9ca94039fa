"""The site profile: what the analyst knows (or the tool inferred) about the mail server.

A profile is a TOML file passed with ``--site FILE``::

    name = "EXCH01 at Example Corp"
    timezone = "America/Chicago"          # IANA name; protocol logs are in server local time
    local_domains = ["example.com"]       # mail for these (and their subdomains) is local
    server_names = ["exch01.example.com"] # the server's own host names
    server_ips = ["192.0.2.25"]           # the server's own addresses (IP literals resolve to it)
    trusted_networks = ["192.0.2.0/24"]   # clients allowed to relay without authentication
    relay_policy = "authenticated-only"   # see RELAY_POLICIES
    forward_all_to = "smarthost.isp.net"  # "Forward all messages to host" (smart host), if set
    reroute_inbound = true                # "Reroute incoming SMTP mail" on the Routing tab
    ims_date_order = "MDY"                # IMS protocol-log date order (US locale by default)

Every key is optional. Unknown keys are errors (they are usually typos), and every error names its key.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import polars as pl

from logforensics.errors import SiteProfileError

RELAY_POLICIES: dict[str, str] = {
    "authenticated-only": "only clients that successfully authenticate may relay "
                          "(IMS: 'Hosts and clients that successfully authenticate')",
    "ip-allowlist": "only clients in trusted_networks may relay",
    "authenticated-or-ip-allowlist": "authenticated clients and clients in trusted_networks may relay",
    "open": "no routing restriction is set: anyone may relay (IMS with no box ticked, Q260562)",
    "unknown": "the relay policy is not known",
}

DATE_ORDERS = ("MDY", "DMY")

#: Canonical dotted-quad IPv4 text (ASCII digits, no leading zeros): what :meth:`SiteProfile.trusted_ip_mask`
#: decides in Polars. Octets above 255 are left to ``ipaddress`` (which rejects them).
_IPV4_QUAD = r"^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$"


@dataclass(frozen=True)
class Locality:
    """What counts as "this site" when resolving an address.

    A domain is local when it equals a local domain or is a subdomain of one, or when it is one of the
    server's own names, or an IP literal (``[192.0.2.1]`` or bare) of one of the server's addresses.
    """

    local_domains: tuple[str, ...] = ()
    server_names: tuple[str, ...] = ()
    server_ips: tuple[str, ...] = ()

    def is_local_domain(self, domain: str | None) -> bool:
        """True when mail for ``domain`` stays on this site."""
        if not domain:
            return False
        d = domain.strip().strip(".").lower()
        if d.startswith("[") and d.endswith("]"):
            literal = d[1:-1]
            if literal.startswith("ipv6:"):
                literal = literal[5:]
            return self.is_server_ip(literal)
        if self.is_server_ip(d):
            return True
        if d in self.server_names or d == "localhost":
            return True
        return any(d == ld or d.endswith("." + ld) for ld in self.local_domains)

    def is_server_ip(self, text: str) -> bool:
        """True when ``text`` is one of the server's own IP addresses (or loopback)."""
        try:
            ip = ipaddress.ip_address(text.strip())
        except ValueError:
            return False
        if ip.is_loopback:
            return True
        return any(ip == ipaddress.ip_address(s) for s in self.server_ips)


@dataclass(frozen=True)
class SiteProfile:
    """The effective site configuration. ``inferred`` maps a key to how its value was inferred."""

    name: str = ""
    timezone: str | None = None
    local_domains: tuple[str, ...] = ()
    server_names: tuple[str, ...] = ()
    server_ips: tuple[str, ...] = ()
    trusted_networks: tuple[str, ...] = ()
    relay_policy: str = "unknown"
    forward_all_to: str | None = None
    reroute_inbound: bool | None = None
    ims_date_order: str = "MDY"
    #: Per-server overrides (``[servers.EXCH01]`` tables): server name (lower case) -> key -> value.
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None
    inferred: dict[str, str] = field(default_factory=dict)

    def for_server(self, server: str | None) -> SiteProfile:
        """The profile as it applies to one server: its ``[servers.NAME]`` table over the site's keys.

        The server is matched by name, case-insensitively, also by its short name (``mx1`` for
        ``mx1.acme-widgets.com``).
        """
        if not server or not self.servers:
            return self
        name = server.lower()
        overrides = self.servers.get(name) or self.servers.get(name.split(".", 1)[0])
        return replace(self, **overrides) if overrides else self

    def locality(self) -> Locality:
        return Locality(self.local_domains, self.server_names, self.server_ips)

    def zone(self) -> str:
        """The IANA zone to read local timestamps in (UTC when unknown)."""
        return self.timezone or "UTC"

    def is_trusted_ip(self, ip: str | None) -> bool:
        """True when ``ip`` lies in one of ``trusted_networks``, or is the server itself (loopback,
        ``server_ips``): mail submitted on the server is local submission, not relaying."""
        if not ip:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if addr.is_loopback or any(addr == ipaddress.ip_address(s) for s in self.server_ips):
            return True
        return any(addr in ipaddress.ip_network(n, strict=False) for n in self.trusted_networks)

    def trusted_ip_mask(self, ips: pl.Series) -> pl.Series:
        """:meth:`is_trusted_ip` for a whole column (null is False), each distinct value once.

        Canonical dotted-quad IPv4 text is decided in Polars: the address as an integer against the
        IPv4 ``server_ips`` and ``trusted_networks`` ranges, and loopback as 127.0.0.0/8. Everything
        else (IPv6, IPv4-mapped IPv6, leading zeros, invalid text) goes through :meth:`is_trusted_ip`.
        """
        distinct = pl.DataFrame({"ip": ips.cast(pl.String).drop_nulls().unique()})
        octets = pl.col("o").struct.field
        quads = distinct.with_columns(pl.col("ip").str.extract_groups(_IPV4_QUAD).alias("o")).with_columns(
            [octets(str(i)).cast(pl.Int64).alias(f"o{i}") for i in range(1, 5)])
        valid = pl.all_horizontal(pl.col(f"o{i}").is_not_null() & (pl.col(f"o{i}") <= 255) for i in range(1, 5))
        v4 = quads.filter(valid).select(
            "ip", "o1", (((pl.col("o1") * 256 + pl.col("o2")) * 256 + pl.col("o3")) * 256 + pl.col("o4")).alias("n"))
        servers = [int(a) for a in map(ipaddress.ip_address, self.server_ips) if a.version == 4]
        trusted = (pl.col("o1") == 127) | pl.col("n").is_in(pl.Series(servers, dtype=pl.Int64).implode())
        for text in self.trusted_networks:
            net = ipaddress.ip_network(text, strict=False)
            if net.version == 4:
                trusted = trusted | pl.col("n").is_between(int(net.network_address), int(net.broadcast_address))
        hits = v4.filter(trusted)["ip"].to_list()
        rest = distinct.join(v4.select("ip"), on="ip", how="anti")["ip"].to_list()
        hits += [ip for ip in rest if self.is_trusted_ip(ip)]
        return ips.cast(pl.String).is_in(pl.Series(hits, dtype=pl.String).implode()).fill_null(False)

    def with_inferred(self, key: str, value: Any, reason: str) -> SiteProfile:
        """A copy with ``key`` set to ``value`` and marked as inferred (with the reason)."""
        return replace(self, **{key: value}, inferred={**self.inferred, key: reason})

    def with_server_inferred(self, server: str, key: str, value: Any, reason: str) -> SiteProfile:
        """A copy with ``key`` set to ``value`` in ``server``'s ``[servers.NAME]`` table, marked as
        inferred for that server (``inferred["servers.NAME.key"]``)."""
        name = server.lower()
        table = {**self.servers.get(name, {}), key: value}
        return replace(self, servers={**self.servers, name: table},
                       inferred={**self.inferred, f"servers.{name}.{key}": reason})

    def inferred_value(self, key: str) -> Any:
        """The value of an ``inferred`` key: a profile key, or ``servers.NAME.key``."""
        if key.startswith("servers."):
            name, _, sub = key[len("servers."):].rpartition(".")
            return self.servers.get(name, {}).get(sub)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        """The effective profile as plain data; ``inferred`` says which keys were not given."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "servers":
                value = {n: {k: list(v) if isinstance(v, tuple) else v for k, v in o.items()}
                         for n, o in value.items()}
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


_LIST_KEYS = ("local_domains", "server_names", "server_ips", "trusted_networks")
_KNOWN_KEYS = {f.name for f in fields(SiteProfile)} - {"source", "inferred"}
#: Keys a ``[servers.NAME]`` table may override.
_SERVER_KEYS = _KNOWN_KEYS - {"name", "servers"}


def load_site_profile(path: str | Path) -> SiteProfile:
    """Read and validate a TOML site profile.

    Raises:
        SiteProfileError: the file is missing or malformed, or a key has a bad value (the key is named).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SiteProfileError(f"cannot read site profile: {exc.strerror or exc}", path=str(p)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SiteProfileError("site profile is not UTF-8 text", path=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = int(found.group(1)) if found else raw.count(b"\n") + 1
        raise SiteProfileError(f"not valid TOML: {exc}", path=str(p), line=line) from None
    return site_profile_from_dict(data, source=str(p))


def site_profile_from_dict(data: dict[str, Any], *, source: str | None = None) -> SiteProfile:
    """Validate a mapping (parsed TOML) into a :class:`SiteProfile`."""

    def fail(key: str, msg: str) -> SiteProfileError:
        return SiteProfileError(msg, path=source, key=key)

    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known keys: {', '.join(sorted(_KNOWN_KEYS))})")
    values: dict[str, Any] = {"source": source}
    for key in _LIST_KEYS:
        if key not in data:
            continue
        items = data[key]
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise fail(key, "must be a list of strings")
        cleaned = tuple(dict.fromkeys(i.strip().strip(".").lower() for i in items if i.strip()))
        for item in cleaned:
            try:
                if key == "server_ips":
                    ipaddress.ip_address(item)
                elif key == "trusted_networks":
                    ipaddress.ip_network(item, strict=False)
            except ValueError:
                kind = "an IP address" if key == "server_ips" else "a network such as 192.0.2.0/24"
                raise fail(key, f"{item!r} is not {kind}") from None
        values[key] = cleaned
    for key in ("name", "timezone", "forward_all_to", "relay_policy", "ims_date_order"):
        if key in data:
            if not isinstance(data[key], str):
                raise fail(key, "must be a string")
            values[key] = data[key].strip()
    if "timezone" in values:
        try:
            zoneinfo.ZoneInfo(values["timezone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise fail("timezone", f"{values['timezone']!r} is not an IANA time zone "
                                   "such as 'America/Chicago' or 'UTC'") from None
    if "relay_policy" in values and values["relay_policy"] not in RELAY_POLICIES:
        raise fail("relay_policy", f"{values['relay_policy']!r} is not one of {', '.join(RELAY_POLICIES)}")
    if "ims_date_order" in values:
        values["ims_date_order"] = values["ims_date_order"].upper()
        if values["ims_date_order"] not in DATE_ORDERS:
            raise fail("ims_date_order", f"must be one of {', '.join(DATE_ORDERS)}")
    if "forward_all_to" in values:
        values["forward_all_to"] = values["forward_all_to"].lower()  # "" = no smart host (not inferred)
    if "reroute_inbound" in data:
        if not isinstance(data["reroute_inbound"], bool):
            raise fail("reroute_inbound", "must be true or false")
        values["reroute_inbound"] = data["reroute_inbound"]
    if "servers" in data:
        values["servers"] = _server_overrides(data["servers"], source)
    return SiteProfile(**values)


def _server_overrides(tables: Any, source: str | None) -> dict[str, dict[str, Any]]:
    """Validate ``[servers.NAME]`` tables: each may set any site key but ``name`` and ``servers``."""
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise SiteProfileError("must be tables such as [servers.EXCH01]", path=source, key="servers")
    out: dict[str, dict[str, Any]] = {}
    for name, table in tables.items():
        bad = sorted(set(table) - _SERVER_KEYS)
        if bad:
            raise SiteProfileError(f"unknown key (a server table may set: {', '.join(sorted(_SERVER_KEYS))})",
                                   path=source, key=f"servers.{name}.{bad[0]}")
        try:
            parsed = site_profile_from_dict(table, source=source)
        except SiteProfileError as exc:
            raise SiteProfileError(exc.message, path=source, key=f"servers.{name}.{exc.key}") from None
        out[name.lower()] = {k: getattr(parsed, k) for k in table}
    return out
