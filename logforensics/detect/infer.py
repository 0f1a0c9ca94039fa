"""Zero configuration: infer the site facts the profile does not give, and say how.

* ``timezone``: the offset between protocol-log (local) and tracking-log (GMT) times, by aligning
  inbound RCPTs with the tracking "received inbound" records of the same recipients; stored as a
  fixed-offset IANA zone (``Etc/GMT+5`` is UTC-5) and applied to the protocol-log events.
* ``server_names``: the names the server gives itself (its HELO/EHLO in outbound sessions, the
  host in its EHLO reply ``250-host Hello``).
* ``local_domains``: domains the server delivered locally (tracking 1013, 1000, 9), else the parent
  domain of its own name.
* ``forward_all_to``: the single host every outbound session went to (the smart host).
* ``reroute_inbound``: true when tracking shows 1014 "SMTP message rerouted".
* ``relay_policy``: ``authenticated-only`` when unauthenticated clients were refused external
  recipients while authenticated ones were accepted.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from datetime import timedelta

import polars as pl

from logforensics.site import SiteProfile

PROTOCOL_FORMATS = ("ims55-protocol",)
LOCAL_DELIVERY_EVENTS = (1013, 1000, 9)


def _offset_pairs(events: pl.DataFrame) -> pl.DataFrame:
    """(t, minutes): each tracking 'received inbound' time and the quarter-hour offset to add to the
    protocol-log (local, read as UTC) time of the same recipient's RCPT."""
    proto = events.filter(pl.col("format").is_in(PROTOCOL_FORMATS) & (pl.col("event") == "rcpt")
                          & (pl.col("direction") == "in") & (pl.col("reply") == 250))
    track = events.filter((pl.col("event") == "tracking") & (pl.col("event_id") == 1012))
    empty = pl.DataFrame(schema={"t": pl.Datetime("us", "UTC"), "m": pl.Int64})
    if proto.is_empty() or track.is_empty():
        return empty
    key = pl.col("recipient").str.to_lowercase().str.strip_chars()
    pairs = proto.select(key.alias("k"), pl.col("ts").alias("p")).join(
        track.select(key.alias("k"), pl.col("ts").alias("t")), on="k")
    # Offsets are whole quarter hours; plausible ones only.
    quarter = (((pl.col("t") - pl.col("p")).dt.total_seconds() / 60.0 / 15).round() * 15).cast(pl.Int64)
    return pairs.select("t", quarter.alias("m")).drop_nulls().filter(pl.col("m").abs() <= 14 * 60)


def infer_time_offset(events: pl.DataFrame) -> tuple[int, int] | None:
    """(offset in minutes to add to protocol-log times, number of aligned pairs), or None."""
    pairs = _offset_pairs(events)
    if pairs.is_empty():
        return None
    best, count = Counter(pairs["m"].to_list()).most_common(1)[0]
    return int(best), count


#: Zones named first when several fit the same offsets (they agree on every aligned moment).
PREFERRED_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
                   "America/Phoenix", "America/Anchorage", "Pacific/Honolulu", "America/Halifax",
                   "America/Sao_Paulo", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris",
                   "Europe/Berlin", "Europe/Rome", "Europe/Madrid", "Europe/Amsterdam", "Europe/Athens",
                   "Europe/Helsinki", "Europe/Moscow", "Australia/Sydney", "Australia/Melbourne",
                   "Australia/Adelaide", "Pacific/Auckland")

#: Share of aligned recipients that must agree on one offset for a fixed offset to be inferred.
FIXED_OFFSET_SHARE = 0.9


def infer_daylight_zone(events: pl.DataFrame) -> tuple[str, list[str], int] | None:
    """A time zone with daylight saving whose offsets match every aligned recipient, when the
    protocol-log clock changed by an hour within the logs (the offsets split between two values an
    hour apart): (zone, every matching zone, pairs), or None. Of several matching zones a common
    one (:data:`PREFERRED_ZONES`) is taken, else the first by name (they agree on every aligned
    moment)."""
    pairs = _offset_pairs(events)
    if pairs.is_empty():
        return None
    counts = Counter(pairs["m"].to_list())
    (a, na), *rest = counts.most_common()
    if not rest or na >= FIXED_OFFSET_SHARE * pairs.height:
        return None
    b, nb = rest[0]
    if abs(a - b) != 60 or na + nb < FIXED_OFFSET_SHARE * pairs.height:
        return None
    sample = pairs.filter(pl.col("m").is_in([a, b])).unique(["t"]).sort("t")
    step = max(1, sample.height // 200)
    checks = [(t, m) for t, m in sample.gather_every(step).iter_rows()]
    matching = []
    for name in sorted(zoneinfo.available_timezones()):
        if "/" not in name or name.startswith(("Etc/", "SystemV/", "posix/", "right/")):
            continue
        zone = zoneinfo.ZoneInfo(name)
        if all(int(t.astimezone(zone).utcoffset().total_seconds() // 60) == -m for t, m in checks):
            matching.append(name)
    if not matching:
        return None
    preferred = [z for z in PREFERRED_ZONES if z in matching]
    return (preferred or matching)[0], matching, pairs.height


def infer_site(events: pl.DataFrame, site: SiteProfile) -> tuple[pl.DataFrame, SiteProfile]:
    """Fill in what ``site`` does not say; returns the (possibly time-shifted) events and profile."""
    site, shifts = infer_profile(events, site)
    return shift_by_server(events, shifts), site


#: A clock correction for protocol-log times read as UTC: minutes to add (a fixed offset), or the
#: IANA zone their wall-clock times are in (an inferred zone with daylight saving).
Shift = int | str


def shifted_times(shift: Shift) -> pl.Expr:
    """``ts`` of protocol-log rows (local wall-clock time read as UTC) corrected by ``shift``."""
    if isinstance(shift, str):
        naive = pl.col("ts").dt.replace_time_zone(None)
        local = naive.dt.replace_time_zone(shift, ambiguous="earliest", non_existent="null")
        gap = (naive + pl.duration(hours=1)).dt.replace_time_zone(shift, ambiguous="earliest", non_existent="null")
        return pl.coalesce(local, gap).dt.convert_time_zone("UTC")
    return pl.col("ts") + pl.duration(minutes=shift)


def shift_reach(shift: Shift) -> timedelta:
    """How far ``shift`` can move a time."""
    return timedelta(hours=14) if isinstance(shift, str) else timedelta(minutes=abs(shift))


def shift_protocol_times(events: pl.DataFrame, shift: Shift) -> pl.DataFrame:
    """Protocol-log times corrected by ``shift`` (the inferred offset or zone of their local clock)."""
    if not shift:
        return events
    return events.with_columns(
        pl.when(pl.col("format").is_in(PROTOCOL_FORMATS))
        .then(shifted_times(shift)).otherwise(pl.col("ts")).alias("ts"))


def shift_by_server(events: pl.DataFrame, shifts: dict[str | None, Shift]) -> pl.DataFrame:
    """Each server's protocol-log times corrected by its shift in ``shifts`` (see :func:`infer_profile`)."""
    ts = pl.col("ts")
    for server, shift in shifts.items():
        if not shift:
            continue
        mine = pl.col("server").is_null() if server is None else pl.col("server") == server
        ts = pl.when(mine & pl.col("format").is_in(PROTOCOL_FORMATS)).then(shifted_times(shift)).otherwise(ts)
    return events if ts.meta.eq(pl.col("ts")) else events.with_columns(ts.alias("ts"))


#: The keys zero configuration may infer.
INFERABLE = ("timezone", "server_names", "local_domains", "forward_all_to", "reroute_inbound", "relay_policy")


def infer_profile(events: pl.DataFrame, site: SiteProfile) -> tuple[SiteProfile, dict[str | None, Shift]]:
    """The profile with what the events reveal filled in, and each server's minutes to add to its
    protocol-log times.

    Each server is inferred from its own events alone, starting from its own profile
    (:meth:`SiteProfile.for_server`): one server's clock, domains or smart host are never lent to
    another. A fact every server that revealed it agrees on (and the only server's facts) is set
    for the site; a fact that differs between servers is set in each server's ``[servers.NAME]``
    table, its reason under ``inferred["servers.NAME.key"]``.
    """
    if "server" in events.columns and events.height:
        groups = sorted(events.partition_by("server", as_dict=True).items(),
                        key=lambda kv: (kv[0][0] is None, kv[0][0] or ""))
        parts = [(server, part) for (server,), part in groups]
    else:
        parts = [(None, events)]
    found: dict[str | None, SiteProfile] = {}
    shifts: dict[str | None, Shift] = {}
    for server, part in parts:
        base = site.for_server(server)
        found[server], shifts[server] = infer_one(part, base)
    for key in INFERABLE:
        values = {server: (getattr(p, key), p.inferred[key]) for server, p in found.items()
                  if key in p.inferred and key not in site.for_server(server).inferred}
        if not values:
            continue
        distinct = {_hashable(v) for v, _ in values.values()}
        if len(distinct) == 1 and (len(values) == len(found) or None not in values):
            value, reason = next(iter(values.values()))
            reasons = {r for _, r in values.values()}
            if len(reasons) > 1:  # the same value, found in different ways: say each
                reason = f"the same on each of {len(values)} servers: " + "; ".join(
                    f"{server or '(no server name)'}: {r}" for server, (_, r) in values.items())
            elif len(values) > 1:
                reason += f" (the same on each of {len(values)} servers)"
            site = site.with_inferred(key, value, reason)
            continue
        for server, (value, reason) in values.items():
            site = site.with_inferred(key, value, reason) if server is None else \
                site.with_server_inferred(server, key, value, reason)
    return site, shifts


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def infer_one(events: pl.DataFrame, site: SiteProfile) -> tuple[SiteProfile, Shift]:
    """``site`` with what ``events`` (one server's) reveal filled in, and the correction of their
    protocol-log times (:data:`Shift`)."""
    shift: Shift = 0
    daylight = infer_daylight_zone(events) if site.timezone is None else None
    if daylight is not None:
        zone, matching, n = daylight
        shift = zone
        others = f"; the same offsets fit {len(matching) - 1} other zone(s), e.g. {', '.join(matching[1:4])}" \
            if len(matching) > 1 else ""
        site = site.with_inferred(
            "timezone", zone, f"protocol-log times moved by an hour within the logs (daylight saving): {n} "
            f"inbound recipients aligned with their tracking 'received inbound' records fit {zone}{others}")
    elif site.timezone is None:
        found = infer_time_offset(events)
        if found and found[0] != 0:
            offset, n = found
            hours, rest = divmod(abs(offset), 60)
            zone = f"Etc/GMT{'+' if offset > 0 else '-'}{hours}" if rest == 0 else None
            shift = offset
            site = site.with_inferred(
                "timezone", zone or f"UTC{'-' if offset > 0 else '+'}{abs(offset)}min",
                f"protocol-log times are UTC{'-' if offset > 0 else '+'}{abs(offset) / 60:g}h: {n} inbound "
                "recipients aligned with their tracking 'received inbound' records (fixed offset; "
                "daylight-saving changes are not modelled)")
        elif found:
            site = site.with_inferred("timezone", "UTC", f"protocol and tracking logs agree ({found[1]} "
                                      "recipients aligned): protocol-log times are UTC")
    if not site.server_names:
        names = _own_names(events)
        if names:
            site = site.with_inferred("server_names", tuple(names),
                                      "the server's own HELO/EHLO in outbound sessions and EHLO replies")
    if not site.local_domains:
        domains, how = _local_domains(events, site)
        if domains:
            site = site.with_inferred("local_domains", tuple(domains), how)
    if site.forward_all_to is None:
        # "Forward all messages to host" is the IMS setting: only IMS protocol sessions tell it.
        hosts = events.filter((pl.col("event") == "connect") & (pl.col("direction") == "out")
                              & pl.col("format").is_in(PROTOCOL_FORMATS))["relay_host"]
        distinct = hosts.drop_nulls().str.to_lowercase().unique().to_list()
        if len(distinct) == 1 and hosts.len() >= 2:
            site = site.with_inferred("forward_all_to", distinct[0],
                                      f"all {hosts.len()} outbound SMTP sessions went to this one host")
    if site.reroute_inbound is None and events.filter(_ims_tracking(1014)).height:
        site = site.with_inferred("reroute_inbound", True, "tracking shows 1014 'SMTP message rerouted'")
    if site.relay_policy == "unknown":
        policy = _relay_policy(events, site)
        if policy:
            site = site.with_inferred("relay_policy", policy[0], policy[1])
    return site, shift


def _ims_tracking(*event_ids: int) -> pl.Expr:
    """Exchange 5.5 tracking rows with these event numbers (other formats reuse the numbers)."""
    return (pl.col("format") == "ims55-tracking") & pl.col("event_id").is_in(event_ids)


def _delivered_here() -> pl.Expr:
    """MTA deliveries on the server itself (mailbox, LMTP), not to a content filter on loopback."""
    return ((pl.col("event") == "deliver") & (pl.col("direction") == "local") & (pl.col("status") == "sent")
            & ~pl.col("relay_host").fill_null("").str.contains(r"127\.0\.0\.1|::1|localhost"))


def _own_names(events: pl.DataFrame) -> list[str]:
    out_helo = events.filter((pl.col("direction") == "out") & (pl.col("event") == "helo"))["helo"]
    ehlo_reply = events.filter((pl.col("direction") == "in") & (pl.col("event") == "helo")
                               & (pl.col("reply") == 250))["reply_text"].str.extract(r"^([A-Za-z0-9.-]+\.[A-Za-z]{2,}) Hello", 1)
    names = Counter(n.lower().rstrip(".") for n in [*out_helo.drop_nulls().to_list(),
                                                     *ehlo_reply.drop_nulls().to_list()] if "." in n)
    return [n for n, _ in names.most_common(3)]


def _domains_of(recipients: pl.Series) -> Counter:
    """Domains of plain addresses (no quotes, routes, ``%`` or ``!``: no relay trick decides them)."""
    plain = recipients.filter(~recipients.str.contains(r'["%!:]|@.*@').fill_null(True))
    return Counter(d.lower().rstrip(".>") for d in plain.str.extract(r"@([A-Za-z0-9.-]+)>?\s*$", 1)
                   .drop_nulls().to_list())


def _local_domains(events: pl.DataFrame, site: SiteProfile) -> tuple[list[str], str]:
    """The local domains the events show, and how."""
    ims_local = _ims_tracking(*LOCAL_DELIVERY_EVENTS)
    local = events.filter((ims_local | _delivered_here()) & pl.col("recipient").is_not_null())
    domains = _domains_of(local["recipient"])
    if domains:
        how = ("domains of recipients the server delivered locally (tracking 1013/1000/9)"
               if local.filter(ims_local).height else
               "domains of recipients the MTA delivered locally (mailbox/LMTP deliveries)")
        return [d for d, _ in domains.most_common(5)], how
    if "message" in events.columns:
        # Exchange 5.5 logs local deliveries (1013) under X.500 names (/o=.../cn=sales), with no
        # domain: the SMTP names are on the 1012 "received inbound" records of those messages.
        # Recipients the message also sent out (1014/1010/1011/1003) are not the local ones.
        delivered = local.filter(ims_local)["message"].drop_nulls().unique()
        key = pl.col("recipient").str.strip_chars().str.strip_chars("<>").str.to_lowercase()
        inbound = events.filter(_ims_tracking(1012) & pl.col("message").is_in(delivered.implode())
                                & pl.col("recipient").is_not_null()).select("message", key.alias("k"))
        sent_out = events.filter(_ims_tracking(1014, 1010, 1011, 1003) & pl.col("recipient").is_not_null()
                                 ).select("message", key.alias("k"))
        domains = _domains_of(inbound.join(sent_out, on=["message", "k"], how="anti")["k"])
        if domains:
            return [d for d, _ in domains.most_common(5)], (
                "domains of the SMTP recipients (tracking 1012) of messages the server delivered locally "
                "(its 1013/1000/9 records name X.500 recipients only)")
    parents = sorted({n.split(".", 1)[1] for n in site.server_names if n.count(".") >= 2})
    return parents, "the parent domain of the server's own name"


def _relay_policy(events: pl.DataFrame, site: SiteProfile) -> tuple[str, str] | None:
    rcpt = events.filter((pl.col("event") == "rcpt") & (pl.col("direction") == "in"))
    if rcpt.is_empty() or not site.local_domains:
        return None
    auth_sessions = events.filter(pl.col("reply") == 235)["session"].drop_nulls().unique()
    loc = site.locality()
    trusted = site.trusted_ip_mask(rcpt["client_ip"]) if "client_ip" in rcpt.columns else \
        pl.Series([False] * rcpt.height)
    rcpt = rcpt.with_columns(trusted.alias("trusted")).select(
        pl.col("recipient").str.extract(r"@([A-Za-z0-9.\[\]-]+)$", 1).alias("d"),
        # A plain address (no quotes, %, !, second @ or route): what the relay check itself judges.
        ~pl.col("recipient").fill_null("").str.contains(r'["%!:]|@.*@').alias("plain"),
        pl.col("session").is_in(auth_sessions.implode()).fill_null(False).alias("auth"), "reply", "trusted",
    ).filter(pl.col("d").is_not_null() & pl.col("reply").is_not_null())
    local = {d: loc.is_local_domain(d) for d in rcpt["d"].unique().to_list()}
    rcpt = rcpt.filter(~pl.col("d").replace_strict(local, return_dtype=pl.Boolean))
    accepted_auth = rcpt.filter(pl.col("auth") & (pl.col("reply") == 250)).height
    unauth = ~pl.col("auth") & ~pl.col("trusted") & pl.col("plain")
    refused_unauth = rcpt.filter(unauth & (pl.col("reply") >= 500)).height
    # An unauthenticated client's plain external recipient accepted: the restriction did not hold
    # (or there is none), so the logs do not show "authenticated-only".
    accepted_unauth = rcpt.filter(unauth & (pl.col("reply") == 250)).height
    if refused_unauth and accepted_auth and not accepted_unauth:
        return ("authenticated-only", f"{refused_unauth} external recipient(s) refused to unauthenticated "
                f"clients, {accepted_auth} accepted after authentication")
    return None
