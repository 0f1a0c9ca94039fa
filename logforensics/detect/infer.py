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

from collections import Counter

import polars as pl

from logforensics.site import SiteProfile

PROTOCOL_FORMATS = ("ims55-protocol",)
LOCAL_DELIVERY_EVENTS = (1013, 1000, 9)


def infer_time_offset(events: pl.DataFrame) -> tuple[int, int] | None:
    """(offset in minutes to add to protocol-log times, number of aligned pairs), or None."""
    proto = events.filter(pl.col("format").is_in(PROTOCOL_FORMATS) & (pl.col("event") == "rcpt")
                          & (pl.col("direction") == "in") & (pl.col("reply") == 250))
    track = events.filter((pl.col("event") == "tracking") & (pl.col("event_id") == 1012))
    if proto.is_empty() or track.is_empty():
        return None
    key = pl.col("recipient").str.to_lowercase().str.strip_chars()
    pairs = proto.select(key.alias("k"), pl.col("ts").alias("p")).join(
        track.select(key.alias("k"), pl.col("ts").alias("t")), on="k")
    if pairs.is_empty():
        return None
    minutes = pairs.select(((pl.col("t") - pl.col("p")).dt.total_seconds() / 60.0).alias("m"))["m"]
    # Offsets are whole quarter hours; take the most common one among plausible pairs.
    quarter = (minutes / 15).round() * 15
    quarter = quarter.filter(quarter.abs() <= 14 * 60)
    if quarter.is_empty():
        return None
    best, count = Counter(quarter.cast(pl.Int64).to_list()).most_common(1)[0]
    return int(best), count


def infer_site(events: pl.DataFrame, site: SiteProfile) -> tuple[pl.DataFrame, SiteProfile]:
    """Fill in what ``site`` does not say; returns the (possibly time-shifted) events and profile."""
    site, shifts = infer_profile(events, site)
    return shift_by_server(events, shifts), site


def shift_protocol_times(events: pl.DataFrame, minutes: int) -> pl.DataFrame:
    """Protocol-log times moved by ``minutes`` (the inferred offset of their local clock)."""
    if not minutes:
        return events
    return events.with_columns(
        pl.when(pl.col("format").is_in(PROTOCOL_FORMATS))
        .then(pl.col("ts") + pl.duration(minutes=minutes)).otherwise(pl.col("ts")).alias("ts"))


def shift_by_server(events: pl.DataFrame, shifts: dict[str | None, int]) -> pl.DataFrame:
    """Each server's protocol-log times moved by its minutes in ``shifts`` (see :func:`infer_profile`)."""
    shifts = {server: minutes for server, minutes in shifts.items() if minutes}
    if not shifts:
        return events
    minutes = pl.lit(0, pl.Int64)
    for server, m in shifts.items():
        mine = pl.col("server").is_null() if server is None else pl.col("server") == server
        minutes = pl.when(mine).then(pl.lit(m, pl.Int64)).otherwise(minutes)
    return events.with_columns(
        pl.when(pl.col("format").is_in(PROTOCOL_FORMATS))
        .then(pl.col("ts") + pl.duration(minutes=minutes)).otherwise(pl.col("ts")).alias("ts"))


#: The keys zero configuration may infer.
INFERABLE = ("timezone", "server_names", "local_domains", "forward_all_to", "reroute_inbound", "relay_policy")


def infer_profile(events: pl.DataFrame, site: SiteProfile) -> tuple[SiteProfile, dict[str | None, int]]:
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
    shifts: dict[str | None, int] = {}
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


def infer_one(events: pl.DataFrame, site: SiteProfile) -> tuple[SiteProfile, int]:
    """``site`` with what ``events`` (one server's) reveal filled in, and the minutes to add to their
    protocol-log times."""
    shift = 0
    if site.timezone is None:
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
