"""Findings: one row per suspicious inbound recipient, with its verdict, severity and evidence.

Inbound recipients are protocol-log and reject-line ``RCPT`` rows, tracking-log "received
inbound" records (1012; Exchange 4.0's 1004 from an internet host) that no protocol-log RCPT covers, and MTA deliveries linked by queue id to
the client that submitted the message. Each is classified by relay form, checked for
authentication and trust, and matched against outbound evidence: for MTA logs, a delivery ``sent``
to another host for the same queue id; otherwise tracking events 1011 (or 1002/1003; 1014/1010 are cited only)
or an outbound SMTP session whose RCPT the remote accepted, for the same effective recipient (and
sender, when both are SMTP addresses), from 5 minutes before to 48 hours after it was offered.
Never ``relayed`` without that evidence.

Everything is matched within one server (the ``server`` column; null is its own server), so
findings can be computed server by server (:func:`build_findings_by_server`) with the same result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

import polars as pl

from logforensics.classify import classify_addresses
from logforensics.detect import rules as rule_registry
from logforensics.detect.probes import probe_by_values, session_probes
from logforensics.site import Locality, SiteProfile

OUTBOUND_TRACKING_EVENTS = (1014, 1010, 1011, 1002, 1003)
#: Of those, the ones that show the message left (1014 rerouted and 1010 queued do not).
TRANSFER_OUT_EVENTS = (1011, 1002, 1003)
INBOUND_TRACKING_EVENTS = (1012,)
#: Exchange 4.0 logged IMC traffic in as 1004 (gateway transfer in; research note §2.4). 1004 also
#: covers other gateways (MS Mail, cc:Mail), so it counts only from a partner that is an internet host.
GATEWAY_IN_EVENT = 1004
MATCH_BEFORE = pl.duration(minutes=5)
MATCH_AFTER = pl.duration(hours=48)
COVER_WINDOW = pl.duration(minutes=10)

#: Reply texts in which the server itself says it refused to relay (Postfix, Sendmail, Exim default
#: ACL, Exchange 5.5 IMS, Exchange 2000+/IIS). Such a refusal is a finding even when the site's
#: local domains are unknown: the MTA judged the recipient foreign.
RELAY_DENIAL = (r"(?i)relay access denied|relaying denied|relay not permitted|unable to relay|"
                r"relaying (?:is )?(?:prohibited|denied|not allowed)|we do not relay|relay(?:ing)? refused")

FINDING_COLUMNS = [
    "id", "rule", "form", "verdict", "severity", "time", "server", "client_host", "client_ip",
    "authenticated", "auth_user", "sender", "recipient", "effective_recipient", "external", "explanation", "probe",
    "evidence",
]

UTC_TS = pl.Datetime("us", "UTC")
EVIDENCE_STRUCT = pl.Struct({"path": pl.String, "line": pl.Int64, "sha256": pl.String, "text": pl.String})

#: ``line_texts(path, lines)`` -> the raw text of those 1-based lines of an input (None if unknown).
LineTexts = Callable[[str, list[int]], list[str | None]]


def _key(expr: pl.Expr) -> pl.Expr:
    """A matching key for an address: trimmed, without angle brackets, lower-cased."""
    return expr.str.strip_chars().str.strip_prefix("<").str.strip_suffix(">").str.to_lowercase()


def _rows(events: pl.DataFrame, keep: pl.Expr, columns: list[str]) -> pl.DataFrame:
    """The rows of ``events`` where ``keep`` holds, only these columns (copying fewer columns is cheaper)."""
    return events.lazy().filter(keep).select(columns).collect()


#: Actions an MTA logs about a recipient it did not refuse (Postfix ``reject_warning``, ``warn``,
#: ``discard``...): the client's RCPT went on to its real answer, which the message's queue lines (or
#: the session) tell, so such a line is no RCPT of its own (it would read as cut off: "attempted").
NOTED_ACTIONS = ("reject_warning", "warn", "discard", "hold", "redirect", "filter", "bcc", "prepend", "info",
                 "milter-discard", "milter-hold")

#: Actions that refuse a whole message at DATA (Postfix ``reject``, ``milter-reject``, ``proxy-reject``).
DATA_REFUSALS = ("reject", "milter-reject", "proxy-reject")

#: The event columns inbound protocol rows carry on.
_PROTO_COLUMNS = ["source", "line", "ts", "format", "server", "session", "client_host", "client_ip", "helo",
                  "sender", "recipient", "reply", "reply_text", "reply_line", "raw_line", "record_line",
                  "auth_user", "status"]
#: The event columns :func:`queue_recipients` reads from arrival lines.
_ARRIVAL_COLUMNS = ["server", "ts", "source", "line", "format", "session", "client_host", "client_ip", "helo",
                    "sender", "auth_user", "recipient", "direction"]
#: An arrival submitted on the server itself, not by a network client: Postfix pickup, Exim without
#: ``H=`` (``P=local``), Sendmail ``relay=user@localhost``, Exchange Store/STOREDRIVER/PICKUP
#: submissions (the readers give such ``received`` rows direction ``local``).
LOCAL_SUBMISSION = pl.col("direction") == "local"


def inbound_recipients(events: pl.DataFrame, screen: RecipientScreen | None = None,
                       resolve: Callable[[pl.Series], pl.DataFrame] | None = None) -> pl.DataFrame:
    """Every recipient offered to the server from outside.

    Three origins: protocol-log and reject-line ``rcpt`` rows (``protocol``), tracking 1012 records
    no protocol RCPT covers (``tracking``), and MTA queue deliveries linked to the client that
    submitted the message (``queue``, see :func:`queue_recipients`). Queue rows carry their own
    outbound evidence (``linked``); the others are matched against outbound evidence later.
    ``screen``, ``resolve``: passed on to :func:`queue_recipients`.
    """
    # Sessions with neither a 235 reply nor an account name join as null: not authenticated, no account.
    auth = _rows(events, pl.col("session").is_not_null() & (pl.col("direction") == "in")
                 & ((pl.col("reply") == 235) | pl.col("auth_user").is_not_null()),
                 ["session", "reply", "auth_user"]).group_by("session").agg(
        (pl.col("reply") == 235).any().alias("authenticated"),
        pl.col("auth_user").drop_nulls().first().alias("session_auth_user"),
    )
    offered = ((pl.col("direction") == "in")
               & (((pl.col("event") == "rcpt")
                   & ~(pl.col("reply").is_null() & pl.col("status").is_in(NOTED_ACTIONS).fill_null(False)))
                  # A message refused at DATA/END-OF-MESSAGE naming its recipients (Postfix milter-reject
                  # names the first, Exim's rejectlog all, in Envelope-to:): the server had accepted them,
                  # and only the content check stopped the relay.
                  | ((pl.col("event") == "data") & pl.col("recipient").is_not_null()
                     & (pl.col("status").is_in(DATA_REFUSALS) | (pl.col("reply") >= 400)).fill_null(False))))
    proto = _merge_duplicate_logs(_rows(events, offered, _PROTO_COLUMNS))
    proto = proto.join(auth, on="session", how="left").with_columns(
        (pl.col("authenticated").fill_null(False) | pl.col("auth_user").is_not_null()).alias("authenticated"),
        pl.coalesce(pl.col("auth_user"), pl.col("session_auth_user")).alias("auth_user"),
        pl.lit("protocol").alias("origin"),
        pl.lit(False).alias("local_submit"),
    )

    internet_partner = pl.col("relay_host").str.contains(r"^\[?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\]?$").fill_null(False)
    tracking = events.filter((pl.col("event_id").is_in(INBOUND_TRACKING_EVENTS)
                              | ((pl.col("event_id") == GATEWAY_IN_EVENT) & internet_partner))
                             & (pl.col("event") == "tracking") & pl.col("recipient").is_not_null())
    if tracking.height and proto.height:
        covered = (
            tracking.select("source", "line", "ts", "server", _key(pl.col("recipient")).alias("k"))
            .join(proto.select(pl.col("ts").alias("pts"), pl.col("server").alias("pserver"),
                               _key(pl.col("recipient")).alias("k")), on="k")
            .filter(((pl.col("ts") - pl.col("pts")).abs() <= COVER_WINDOW)
                    & pl.col("server").eq_missing(pl.col("pserver")))
            .select("source", "line").unique()
        )
        tracking = tracking.join(covered, on=["source", "line"], how="anti")
    tracking = tracking.with_columns(
        pl.lit(False).alias("local_submit"),
        pl.lit(None, pl.Boolean).alias("authenticated"),
        pl.lit(None, pl.String).alias("auth_user"),
        pl.col("relay_host").alias("client_host"),
        pl.lit(250, pl.Int64).alias("reply"),
        pl.lit("tracking").alias("origin"),
        pl.lit(None, pl.String).alias("status"),
    )
    cols = ["source", "line", "ts", "format", "server", "session", "client_host", "client_ip", "helo",
            "sender", "recipient", "reply", "reply_text", "reply_line", "raw_line", "record_line",
            "authenticated", "auth_user", "origin", "status", "local_submit"]
    frames = [proto.select([*cols, "linked"]),
              tracking.select(cols).with_columns(pl.lit(None, LINKED_TYPE).alias("linked"))]
    frames = [f.with_columns(pl.lit(None, pl.Boolean).alias("delivered_out")) for f in frames]
    queue = queue_recipients(events, screen, resolve).select([*cols, "linked", "delivered_out"])
    frames[0], queue = _join_protocol_and_queue(frames[0], queue)
    return pl.concat([*frames, queue], how="vertical_relaxed")


def _join_protocol_and_queue(proto: pl.DataFrame, queue: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row for a recipient that a protocol log and the queue (tracking) lines both show: an
    accepted protocol RCPT and a queue recipient of the same server and address, within
    ``COVER_WINDOW`` and from the same client address when both name one (IIS SMTP log and Exchange
    2003 tracking of one server; Exchange 2007+ Receive log and tracking). The protocol row (exact
    session, authentication) stays, takes the queue row's lines and outbound proof (``origin``
    ``queue``), and the queue row goes. Each row is paired at most once, nearest in time first."""
    if proto.is_empty() or queue.is_empty():
        return proto, queue
    p = proto.with_row_index("_p").filter(pl.col("reply").is_between(250, 252)).select(
        "_p", "server", "ts", "client_ip", _key(pl.col("recipient")).alias("k"))
    q = queue.with_row_index("_q").select(
        "_q", pl.col("server").alias("q_server"), pl.col("ts").alias("q_ts"), pl.col("client_ip").alias("q_ip"),
        _key(pl.col("recipient")).alias("k"))
    pairs = (p.join(q, on="k")
             .filter(pl.col("server").eq_missing(pl.col("q_server"))
                     & ((pl.col("ts") - pl.col("q_ts")).abs() <= COVER_WINDOW)
                     & (pl.col("client_ip").is_null() | pl.col("q_ip").is_null()
                        | (pl.col("client_ip") == pl.col("q_ip"))))
             .sort((pl.col("ts") - pl.col("q_ts")).abs(), "_p", "_q")
             .unique("_q", keep="first", maintain_order=True).unique("_p", keep="first", maintain_order=True)
             .select("_p", "_q"))
    if pairs.is_empty():
        return proto, queue
    taken = pairs.join(queue.with_row_index("_q").select(
        "_q", pl.col("linked").alias("q_linked"), pl.col("delivered_out").alias("q_out")), on="_q").drop("_q")
    proto = (proto.with_row_index("_p").join(taken, on="_p", how="left", maintain_order="left")
             .with_columns(
                 pl.when(pl.col("q_out").is_not_null()).then(pl.lit("queue")).otherwise(pl.col("origin"))
                 .alias("origin"),
                 pl.when(pl.col("q_out").is_not_null())
                 .then(pl.concat_list(pl.col("linked").fill_null(pl.lit([], LINKED_TYPE)), pl.col("q_linked")))
                 .otherwise(pl.col("linked")).alias("linked"),
                 pl.coalesce(pl.col("q_out"), pl.col("delivered_out")).alias("delivered_out"))
             .drop("_p", "q_linked", "q_out"))
    queue = queue.with_row_index("_q").join(pairs, on="_q", how="anti").drop("_q")
    return proto, queue


#: Failed logins this long before an authenticated relay make the account suspect.
AUTH_FAILURE_LOOKBACK = timedelta(hours=24)
AUTH_FAILURE_WINDOW = pl.lit(AUTH_FAILURE_LOOKBACK)
#: A failed login: an AUTH that failed or was answered 5xx.
FAILED_LOGIN = (pl.col("event") == "auth") & ((pl.col("status") == "failed") | (pl.col("reply") >= 500))
#: The latest failed logins an LF-AUTH-ABUSE finding cites.
AUTH_FAILURES_CITED = 5
#: Failed logins from the client's own address that make the account suspect (one is a typo).
AUTH_FAILURES_SUSPECT = 2
#: An authenticated client mailing this many outside domains within an hour is suspect.
AUTH_BURST_DOMAINS = 10


def _mark_auth_abuse(rcpts: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """``auth_abuse``: an authenticated client outside the trusted networks sent outside the site after
    failed logins (same server, same client address or account, within 24 hours), or in a burst to
    many outside domains within an hour. Such relays raise ``LF-AUTH-ABUSE`` findings. Marked per
    recipient row (one arrival line of an MTA log stands for all its recipients, local ones too)."""
    rows = rcpts.with_row_index("_ab")
    cand = _rows(rows, pl.col("authenticated").fill_null(False) & ~pl.col("trusted_ip")
                 & pl.col("external").fill_null(False) & pl.col("ts").is_not_null(),
                 ["_ab", "server", "client_ip", "auth_user", "ts", "effective_domain"])
    if cand.is_empty():
        return rcpts.with_columns(pl.lit(False).alias("auth_abuse"), pl.lit(None, LINKED_TYPE).alias("abuse_lines"))
    fails = _rows(events, FAILED_LOGIN & pl.col("ts").is_not_null(),
                  ["server", "client_ip", "auth_user", "ts", "source", "line"]).rename({"ts": "f_ts"})
    in_window = (pl.col("f_ts") <= pl.col("ts")) & (pl.col("f_ts") >= pl.col("ts") - AUTH_FAILURE_WINDOW)
    fails = fails.rename({"client_ip": "f_ip"})
    flagged = [
        cand.join(fails.filter(pl.col("f_ip").is_not_null()), left_on=["server", "client_ip"],
                  right_on=["server", "f_ip"], nulls_equal=True)
        .filter(in_window).select("_ab", "f_ts", "source", "line", pl.lit(False).alias("elsewhere")),
        cand.filter(pl.col("auth_user").is_not_null()).join(
            fails.filter(pl.col("auth_user").is_not_null()), on=["server", "auth_user"], nulls_equal=True)
        .filter(in_window).select("_ab", "f_ts", "source", "line",
                                  (~pl.col("f_ip").eq_missing(pl.col("client_ip"))).alias("elsewhere")),
    ]
    # Suspect after several failed logins, or after one for the account from another address; a
    # single failure from the same address just before (a mistyped password) is not enough.
    failures = pl.concat(flagged).unique(["_ab", "source", "line"]).sort("_ab", "f_ts", "source", "line")
    suspect = failures.group_by("_ab").agg(
        ((pl.len() >= AUTH_FAILURES_SUSPECT) | pl.col("elsewhere").any()).alias("suspect"))
    failures = failures.join(suspect.filter(pl.col("suspect")).select("_ab"), on="_ab", how="semi",
                             maintain_order="left")
    # The failed logins each flagged row rests on (the latest few), cited as its evidence.
    failed = (failures.group_by("_ab", maintain_order=True)
              .agg(pl.struct(pl.col("source").alias("path"), "line", pl.lit(None, pl.Int64).alias("line2"))
                   .tail(AUTH_FAILURES_CITED).alias("abuse_lines")))
    flagged = [failed.select("_ab")]
    who = pl.coalesce(pl.col("auth_user"), pl.col("client_ip"))
    burst = cand.with_columns(who.alias("who"), pl.col("ts").dt.truncate("1h").alias("hour"))
    busy = burst.group_by("server", "who", "hour").agg(pl.col("effective_domain").n_unique().alias("n")).filter(
        pl.col("n") >= AUTH_BURST_DOMAINS)
    flagged.append(burst.join(busy, on=["server", "who", "hour"], nulls_equal=True).select("_ab"))
    marked = pl.concat(flagged)["_ab"].unique()
    return (rows.with_columns(pl.col("_ab").is_in(marked.implode()).alias("auth_abuse"))
            .join(failed, on="_ab", how="left", maintain_order="left")
            .with_columns(pl.col("abuse_lines").cast(LINKED_TYPE)).drop("_ab"))


def _merge_duplicate_logs(rcpts: pl.DataFrame) -> pl.DataFrame:
    """One row per refusal that two logs of one server both recorded (Exim writes every rejection to
    ``mainlog`` and ``rejectlog``; syslog copies): the first keeps the finding, the copy is cited.

    Rows are copies when server, time, client, sender, recipient, reply and text agree but the files
    differ (not the session: its key names the file). Repeats within one file are real repeats and
    are kept.
    """
    key = ["server", "ts", "client_ip", "sender", "recipient", "reply", "reply_text", "format"]
    rcpts = rcpts.with_columns(pl.lit(None, LINKED_TYPE).alias("linked"))
    if rcpts.is_empty() or rcpts["source"].n_unique() == 1 or not rcpts.select(key).is_duplicated().any():
        return rcpts
    copies_exist = rcpts.group_by(key).agg(pl.col("source").n_unique().alias("n")).filter(pl.col("n") > 1)
    if copies_exist.is_empty():
        return rcpts
    ranked = rcpts.with_columns(
        pl.col("source").rank("dense").over(key, order_by="source").alias("_copy"),
        pl.len().over(key).alias("_n"))
    if ranked.filter(pl.col("_copy") > 1).is_empty():
        return rcpts
    copies = ranked.filter(pl.col("_copy") > 1).group_by(key).agg(
        pl.struct(pl.col("source").alias("path"), "line", pl.lit(None, pl.Int64).alias("line2"))
        .sort_by("source", "line").alias("copies"))
    firsts = ranked.filter(pl.col("_copy") == 1).join(copies, on=key, how="left", nulls_equal=True)
    return firsts.with_columns(pl.col("copies").cast(LINKED_TYPE).alias("linked")).drop("copies", "_copy", "_n")


LINKED_TYPE = pl.List(pl.Struct({"path": pl.String, "line": pl.Int64, "line2": pl.Int64}))

#: How long a message may sit in the queue between its arrival and a delivery attempt.
QUEUE_LIFETIME = "10d"


def _linked_lines(per_rcpt: pl.DataFrame) -> pl.DataFrame:
    """Per row ``_r``: the arrival line, the queue-manager line, then the delivery lines, as the
    :data:`LINKED_TYPE` list (built in long form: much faster than concatenating struct lists)."""
    head = per_rcpt.select("_r", pl.lit(0).alias("o"), pl.col("a_source").alias("path"), pl.col("a_line").alias("line"))
    queued = per_rcpt.filter(pl.col("q_line").is_not_null()).select(
        "_r", pl.lit(1).alias("o"), pl.col("q_source").alias("path"), pl.col("q_line").alias("line"))
    deliveries = (per_rcpt.select("_r", "deliveries").explode("deliveries").drop_nulls("deliveries")
                  .unnest("deliveries").select("_r", pl.lit(2).alias("o"), "path", "line"))
    long = pl.concat([head, queued, deliveries], how="vertical_relaxed").sort(  # by (_r, o), stable
        3 * pl.col("_r").cast(pl.Int64) + pl.col("o"), maintain_order=True)
    return long.select("_r", pl.struct("path", "line", pl.lit(None, pl.Int64).alias("line2")).alias("linked")).group_by(
        "_r", maintain_order=True).agg("linked").with_columns(pl.col("linked").cast(LINKED_TYPE))


class RecipientScreen:
    """Which recipients could raise a finding on their own: a form that is not plain, or an external
    destination offered by a client outside the trusted networks (unauthenticated relay, or
    ``auth_abuse``, which needs an authenticated client outside them). Every distinct address is
    classified once; :meth:`classes` gives them all back for the assessment."""

    def __init__(self, site: SiteProfile) -> None:
        self.site = site
        self._table: pl.DataFrame | None = None

    def classes(self, addresses: pl.Series) -> pl.DataFrame:
        """:func:`classify_addresses` of these addresses, plus every address classified before."""
        if self._table is None:
            self._table = classify_addresses(addresses, self.site.locality())
            return self._table
        new = addresses.filter(~addresses.is_in(self._table["address"].implode()).fill_null(True))
        if new.len():
            self._table = pl.concat([self._table, classify_addresses(new, self.site.locality())])
        return self._table

    def kinds(self, addresses: pl.Series) -> tuple[pl.Series, pl.Series]:
        """Per address: (its form is not plain, it resolves outside the site); False for null."""
        table = self.classes(addresses)
        routed = table.filter(pl.col("form") != "plain")["address"]
        external = table.filter(pl.col("external"))["address"]
        return (addresses.is_in(routed.implode()).fill_null(False),
                addresses.is_in(external.implode()).fill_null(False))

    def untrusted(self, client_ips: pl.Series) -> pl.Series:
        """Per client address: not in the trusted networks, not the server itself (null: untrusted)."""
        return ~self.site.trusted_ip_mask(client_ips)


def queue_recipients(events: pl.DataFrame, screen: RecipientScreen | None = None,
                     resolve: Callable[[pl.Series], pl.DataFrame] | None = None) -> pl.DataFrame:
    """Recipients of messages clients handed to an MTA, from its delivery lines (Postfix, Sendmail, Exim,
    Exchange 2000+ tracking).

    Each ``deliver`` row is linked to the latest ``received`` row with the same (server, queue id)
    at or before it (queue ids are reused, so never by id alone), and to the latest ``queued`` row
    for the sender. One row per (arrival, recipient as offered): the offered form is
    ``orig_recipient`` when logged. ``delivered_out`` is true when some attempt was ``sent`` to
    another host. Recipients listed on an arrival with no delivery line are kept too (accepted).

    When a message's arrival lines list its recipients (Exchange tracking, Exim ``for ...``), a
    delivery stands for the listed recipient it names, or else for the listed recipient whose effective
    recipient it is (an IMCEASMTP or percent-hack address delivered decoded); a delivery to an
    address the client never offered is the server's own expansion or forwarding (a distribution
    list, a redirect), not a recipient of the client's, and is left out. ``resolve`` classifies
    addresses (``address, effective_recipient...``; default: :func:`classify_addresses` without
    site knowledge).

    With a ``screen``, only the messages (server, queue id) that may raise a finding are linked: some
    recipient, delivered or listed, is routed, or is external with an arrival from an untrusted client.
    Everything here is computed message by message, so the rows kept are exactly as without it.
    """
    def keyed(event: str, columns: list[str], keep: pl.Expr | None = None) -> pl.DataFrame:
        rows = (pl.col("event") == event) & pl.col("message").is_not_null()
        return _rows(events, rows if keep is None else rows & keep,
                     ["message", *columns]).with_columns(pl.col("server").fill_null("").alias("_server"))

    arrivals = keyed("received", _ARRIVAL_COLUMNS).sort("ts", "source", "line")
    deliveries = keyed("deliver", ["ts", "source", "line", "server", "direction", "status", "orig_recipient",
                                   "recipient", "reply_text"], pl.col("ts").is_not_null())
    arrivals, deliveries = _follow_handoffs(arrivals, deliveries)
    empty = pl.DataFrame(schema={
        "source": pl.String, "line": pl.Int64, "ts": UTC_TS, "format": pl.String, "server": pl.String,
        "session": pl.String, "client_host": pl.String, "client_ip": pl.String, "helo": pl.String,
        "sender": pl.String, "recipient": pl.String, "reply": pl.Int64, "reply_text": pl.String,
        "reply_line": pl.Int64,
        "raw_line": pl.Int64, "record_line": pl.Int64, "authenticated": pl.Boolean, "auth_user": pl.String,
        "origin": pl.String, "status": pl.String, "local_submit": pl.Boolean, "linked": LINKED_TYPE,
        "delivered_out": pl.Boolean})
    if arrivals.is_empty():
        return empty
    by_msg = ["_server", "message"]
    if screen is not None:
        routed, external = screen.kinds(
            deliveries.select(pl.coalesce(pl.col("orig_recipient"), pl.col("recipient"))).to_series())
        listed_routed, listed_external = screen.kinds(arrivals["recipient"])
        untrusted = screen.untrusted(arrivals["client_ip"]) & ~arrivals.select(LOCAL_SUBMISSION.fill_null(False))[:, 0]
        may_raise = pl.concat([
            deliveries.select(by_msg).filter(routed),
            deliveries.select(by_msg).filter(external).join(arrivals.select(by_msg).filter(untrusted), on=by_msg,
                                                            how="semi"),
            arrivals.select(by_msg).filter(listed_routed | (listed_external & untrusted)),
        ]).unique()
        deliveries = deliveries.join(may_raise, on=by_msg, how="semi", maintain_order="left")
        arrivals = arrivals.join(may_raise, on=by_msg, how="semi", maintain_order="left")
    deliveries = deliveries.sort("ts", "source", "line").with_columns(
        _key(pl.coalesce(pl.col("orig_recipient"), pl.col("recipient"))).alias("_rkey"))
    arr = arrivals.select(
        "_server", "message", pl.col("ts").alias("a_ts"), pl.col("source").alias("a_source"),
        pl.col("line").alias("a_line"), pl.col("format").alias("a_format"), pl.col("session").alias("a_session"),
        pl.col("client_host").alias("a_client_host"), pl.col("client_ip").alias("a_client_ip"),
        pl.col("helo").alias("a_helo"), pl.col("sender").alias("a_sender"), pl.col("auth_user").alias("a_auth"),
        LOCAL_SUBMISSION.fill_null(False).alias("a_local"), _key(pl.col("recipient")).alias("_rkey"),
    ).unique(["_server", "message", "a_source", "a_line"], keep="first", maintain_order=True)
    queued = keyed("queued", ["ts", "sender", "source", "line", "server"]).sort("ts", "source", "line").select(
        "_server", "message", pl.col("ts").alias("q_ts"), pl.col("sender").alias("q_sender"),
        pl.col("source").alias("q_source"), pl.col("line").alias("q_line"))
    if screen is not None:
        queued = queued.join(may_raise, on=by_msg, how="semi", maintain_order="left")

    # The arrival line that lists this very recipient (tracking logs list one per line), else the
    # first arrival line of the message at that time; ties go to the earliest line, never at random.
    a_cols = [c for c in arr.columns if c.startswith("a_")]
    one_per_time = arr.unique(["_server", "message", "a_ts"], keep="first", maintain_order=True).drop("_rkey")
    linked = deliveries.join_asof(one_per_time, left_on="ts", right_on="a_ts", by=["_server", "message"],
                                  strategy="backward", tolerance=QUEUE_LIFETIME, check_sortedness=False)
    listed = arr.filter(pl.col("_rkey").is_not_null()).unique(["_server", "message", "_rkey", "a_ts"],
                                                               keep="first", maintain_order=True)
    if not listed.is_empty():
        same = deliveries.join_asof(listed, left_on="ts", right_on="a_ts", by=["_server", "message", "_rkey"],
                                    strategy="backward", tolerance=QUEUE_LIFETIME, check_sortedness=False)
        use = same["a_line"].is_not_null()
        linked = linked.with_columns([pl.when(use).then(same[c]).otherwise(pl.col(c)).alias(c) for c in a_cols])
    linked = linked.filter(pl.col("a_line").is_not_null())
    if not queued.is_empty():
        linked = linked.join_asof(queued, left_on="ts", right_on="q_ts", by=["_server", "message"],
                                             strategy="backward", tolerance=QUEUE_LIFETIME, check_sortedness=False)
        linked = linked.with_columns(  # a qmgr line from before this arrival belongs to an earlier message
            pl.when(pl.col("q_ts") >= pl.col("a_ts") - pl.duration(minutes=1))
            .then(pl.col("q_sender")).otherwise(None).alias("q_sender"),
            pl.when(pl.col("q_ts") >= pl.col("a_ts") - pl.duration(minutes=1))
            .then(pl.col("q_line")).otherwise(None).alias("q_line"))
    else:
        linked = linked.with_columns(pl.lit(None, pl.String).alias("q_sender"),
                                     pl.lit(None, pl.Int64).alias("q_line"), pl.lit(None, pl.String).alias("q_source"))
    linked = linked.with_columns(pl.coalesce(pl.col("orig_recipient"), pl.col("recipient")).alias("offered"))
    linked = _as_listed(linked, arrivals, resolve)
    sent_out = (pl.col("direction") == "out") & (pl.col("status") == "sent")
    # Row values are computed on whole columns first, so that the groups only take firsts and lists.
    per_rcpt = linked.select(
        "ts", "line", "a_source", "a_line", "offered", "a_ts", "a_format", "server", "a_session", "a_client_host",
        "a_client_ip", "a_helo", pl.coalesce(pl.col("a_sender"), pl.col("q_sender")).alias("sender"), "a_auth",
        "a_local",
        sent_out.alias("sent_out"), "q_line", "q_source",
        # The fate of an attempt out that did not succeed (bounced, deferred, expired), for the words.
        pl.when((pl.col("direction") == "out") & (pl.col("status") != "sent")).then(pl.col("status"))
        .alias("out_failure"),
        pl.struct(pl.col("source").alias("path"), "line", pl.lit(None, pl.Int64).alias("line2")).alias("deliveries"),
        pl.col("source").alias("d_source"),
    ).sort("ts", "line", "d_source")  # files of one time often share line numbers: ties broken by file
    per_rcpt = per_rcpt.group_by("a_source", "a_line", "offered", maintain_order=True).agg(
        pl.col("a_ts").first().alias("ts"), pl.col("a_format").first().alias("format"),
        pl.col("server").first().alias("server"), pl.col("a_session").first().alias("session"),
        pl.col("a_client_host").first().alias("client_host"), pl.col("a_client_ip").first().alias("client_ip"),
        pl.col("a_helo").first().alias("helo"),
        pl.col("sender").first(ignore_nulls=True).alias("sender"),
        pl.col("a_auth").first().alias("auth_user"),
        pl.col("a_local").first().alias("local_submit"),
        pl.col("sent_out").any().alias("delivered_out"),
        pl.col("out_failure").drop_nulls().last().alias("out_failure"),
        pl.col("q_line").first(ignore_nulls=True).alias("q_line"),
        pl.col("q_source").first(ignore_nulls=True).alias("q_source"),
        pl.col("deliveries"),
        pl.col("line").first().alias("first_delivery"),
    )
    per_rcpt = per_rcpt.with_row_index("_r")
    # One group per _r, in _r order (every row has its arrival line): no join needed.
    per_rcpt = per_rcpt.with_columns(_linked_lines(per_rcpt)["linked"]).drop("_r")
    queue = per_rcpt.select(
        pl.col("a_source").alias("source"), pl.col("a_line").alias("line"), "ts", "format", "server", "session",
        "client_host", "client_ip", "helo", "sender", pl.col("offered").alias("recipient"),
        pl.lit(250, pl.Int64).alias("reply"), pl.lit(None, pl.String).alias("reply_text"),
        pl.lit(None, pl.Int64).alias("reply_line"),
        pl.lit(None, pl.Int64).alias("raw_line"), pl.lit(None, pl.Int64).alias("record_line"),
        pl.col("auth_user").is_not_null().alias("authenticated"), "auth_user",
        pl.lit("queue").alias("origin"), pl.col("out_failure").alias("status"), "local_submit", "linked",
        "delivered_out",
    )

    # Recipients listed on an arrival line that no delivery line mentions.
    listed = arrivals.filter(pl.col("recipient").is_not_null())
    if listed.height:
        seen = linked.select("_server", "message", _key(pl.col("offered")).alias("k"))
        seen = pl.concat([seen, linked.select("_server", "message", _key(pl.col("recipient")).alias("k"))])
        listed = listed.with_columns(_key(pl.col("recipient")).alias("k")).join(
            seen.unique(), on=["_server", "message", "k"], how="anti")
        queue = pl.concat([queue, listed.select(
            "source", "line", "ts", "format", "server", "session", "client_host", "client_ip", "helo",
            "sender", "recipient", pl.lit(250, pl.Int64).alias("reply"),
            pl.lit(None, pl.String).alias("reply_text"), pl.lit(None, pl.Int64).alias("reply_line"),
            pl.lit(None, pl.Int64).alias("raw_line"), pl.lit(None, pl.Int64).alias("record_line"),
            pl.col("auth_user").is_not_null().alias("authenticated"), "auth_user",
            pl.lit("queue").alias("origin"), pl.lit(None, pl.String).alias("status"),
            LOCAL_SUBMISSION.fill_null(False).alias("local_submit"),
            pl.concat_list(pl.struct(pl.col("source").alias("path"), "line", pl.lit(None, pl.Int64).alias("line2")))
            .alias("linked"),
            pl.lit(False).alias("delivered_out"))], how="vertical_relaxed")
    return pl.concat([empty, queue], how="vertical_relaxed")


#: The new queue id a content filter or another MTA instance on this host gave a message handed to it
#: (Postfix ``queued as QID``; Exim ``id=1AbCdE-000123-Ab`` in the confirmation).
HANDOFF_ID = r"queued as ([0-9A-Za-z]+)|\bid=([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4})\b"
#: A re-injected message arrives this soon after its hand-off.
HANDOFF_WINDOW = timedelta(minutes=10)
#: Hand-offs followed one after another (MTA -> filter -> MTA -> ...).
HANDOFF_HOPS = 3


def _follow_handoffs(arrivals: pl.DataFrame, deliveries: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Messages passed through a content filter or a second MTA instance on the server (a delivery
    ``sent`` to loopback whose answer names the new queue id, then an arrival of that id from
    loopback within :data:`HANDOFF_WINDOW`) continue as the original message: the re-injection
    arrival is dropped and the deliveries linked to it count for the original message (the real
    client, its trust, its recipients). Otherwise the filter's re-injection, from a trusted loopback
    client, would hide the relay and leave the original "accepted"."""
    if deliveries.is_empty() or arrivals.is_empty():
        return arrivals, deliveries
    by = ["_server", "message"]
    arrivals = arrivals.with_row_index("_arr")
    for _ in range(HANDOFF_HOPS):
        handoffs = (deliveries.filter((pl.col("direction") == "local") & (pl.col("status") == "sent"))
                    .select("_server", pl.col("message").alias("orig"), pl.col("ts").alias("h_ts"),
                            pl.coalesce(pl.col("reply_text").str.extract(HANDOFF_ID, 1),
                                        pl.col("reply_text").str.extract(HANDOFF_ID, 2)).alias("message"))
                    .drop_nulls("message").filter(pl.col("message") != pl.col("orig")))
        if handoffs.is_empty():
            break
        reinjected = (arrivals.select("_arr", *by, "ts").join(handoffs, on=by)
                      .filter((pl.col("ts") >= pl.col("h_ts") - pl.duration(minutes=1))
                              & (pl.col("ts") <= pl.col("h_ts") + HANDOFF_WINDOW))
                      .sort("_arr", "h_ts").unique("_arr", keep="last", maintain_order=True)
                      .select("_arr", "orig"))
        if reinjected.is_empty():
            break
        # Each delivery's arrival (the latest of its id at or before it), as queue_recipients links it.
        order = deliveries.with_row_index("_d").sort("ts")
        linked = order.join_asof(
            arrivals.select(*by, pl.col("ts").alias("a_ts"), "_arr").sort("a_ts"), left_on="ts", right_on="a_ts",
            by=by, strategy="backward", tolerance=QUEUE_LIFETIME, check_sortedness=False)
        moved = linked.join(reinjected, on="_arr").select("_d", "orig")
        deliveries = (deliveries.with_row_index("_d").join(moved, on="_d", how="left", maintain_order="left")
                      .with_columns(pl.coalesce(pl.col("orig"), pl.col("message")).alias("message"))
                      .drop("_d", "orig"))
        arrivals = arrivals.join(reinjected, on="_arr", how="anti", maintain_order="left")
    return arrivals.drop("_arr"), deliveries


def _as_listed(linked: pl.DataFrame, arrivals: pl.DataFrame,
               resolve: Callable[[pl.Series], pl.DataFrame] | None) -> pl.DataFrame:
    """Deliveries of messages whose arrivals list recipients, as the listed recipient each stands for
    (``offered``); deliveries to addresses never listed are dropped (see :func:`queue_recipients`).
    The list is the one logged with the arrival each delivery is linked to (the rows of that time in
    that file)."""
    lists = (arrivals.filter(pl.col("recipient").is_not_null())
             .select("_server", "message", pl.col("ts").alias("a_ts"), pl.col("source").alias("a_source"),
                     pl.col("recipient").alias("listed"), _key(pl.col("recipient")).alias("lkey"))
             .unique(["_server", "message", "a_ts", "a_source", "lkey"], keep="first", maintain_order=True))
    if lists.is_empty() or linked.is_empty():
        return linked
    # The very arrival the delivery is linked to: its file's rows of its time (ids are reused).
    by_msg = ["_server", "message", "a_ts", "a_source"]
    classes = (resolve or (lambda a: classify_addresses(a, Locality())))(lists["listed"].unique())
    lists = lists.join(classes.select(pl.col("address").alias("listed"),
                                      _key(pl.col("effective_recipient")).alias("ekey")),
                       on="listed", how="left", maintain_order="left")
    linked = linked.with_columns(_key(pl.col("offered")).alias("_okey"))
    has_list = lists.select(*by_msg).unique().with_columns(pl.lit(True).alias("_has_list"))
    direct = lists.select(*by_msg, pl.col("lkey").alias("_okey")).with_columns(pl.lit(True).alias("_direct"))
    decoded = (lists.filter(pl.col("ekey").is_not_null() & (pl.col("ekey") != pl.col("lkey")))
               .unique([*by_msg, "ekey"], keep="first", maintain_order=True)
               .select(*by_msg, pl.col("ekey").alias("_okey"), pl.col("listed").alias("_listed")))
    linked = (linked.join(has_list, on=by_msg, how="left", maintain_order="left")
              .join(direct, on=[*by_msg, "_okey"], how="left", maintain_order="left")
              .join(decoded, on=[*by_msg, "_okey"], how="left", maintain_order="left"))
    listed_elsewhere = pl.col("_has_list").fill_null(False) & ~pl.col("_direct").fill_null(False)
    return (linked.filter(~listed_elsewhere | pl.col("_listed").is_not_null())
            .with_columns(pl.when(listed_elsewhere).then(pl.col("_listed")).otherwise(pl.col("offered"))
                          .alias("offered"))
            .drop("_okey", "_has_list", "_direct", "_listed"))


def outbound_evidence(events: pl.DataFrame) -> pl.DataFrame:
    """Rows showing mail leaving the server: (k, ts, server, sender_k, source, line, line2, proof).

    ``proof`` marks what shows the message really left: tracking 1011 (SMTP transferred out),
    1002/1003 (transfer out), or an outbound RCPT the remote accepted in a session whose message was
    not then refused or cut off (a DATA answered 4xx/5xx, or a failure the server logged on its own
    such as the IMS ``499 No routing hosts are reachable ... Rescheduling delivery for later``,
    before the session's next MAIL). Tracking 1014 (rerouted) and 1010 (queued outbound) are cited
    but prove nothing: the message may have waited in the queue for good.
    """
    tracking = events.filter((pl.col("event") == "tracking")
                             & pl.col("event_id").is_in(OUTBOUND_TRACKING_EVENTS)
                             & pl.col("recipient").is_not_null())
    proto = events.filter((pl.col("event") == "rcpt") & (pl.col("direction") == "out")
                          & pl.col("reply").is_between(250, 252))
    return pl.concat([
        tracking.select(_key(pl.col("recipient")).alias("k"), "ts", "server",
                        _key(pl.col("sender")).alias("sender_k"), "source", "line",
                        pl.col("record_line").alias("line2"),
                        pl.col("event_id").is_in(TRANSFER_OUT_EVENTS).alias("proof")),
        proto.select(_key(pl.col("recipient")).alias("k"), "ts", "server",
                     _key(pl.col("sender")).alias("sender_k"), "source", "line",
                     pl.col("reply_line").alias("line2"),
                     ~_failed_after(proto, events).alias("proof")),
    ], how="vertical_relaxed")


def _failed_after(rcpts: pl.DataFrame, events: pl.DataFrame) -> pl.Series:
    """Per outbound RCPT row: its session's message failed after it (see :func:`outbound_evidence`)."""
    if rcpts.is_empty():
        return pl.Series([], dtype=pl.Boolean)
    out = _rows(events, (pl.col("direction") == "out") & pl.col("session").is_not_null(),
                ["session", "source", "line", "event", "reply", "reply_line"])
    answered = out.select("session", "source", pl.col("reply_line").alias("line")).drop_nulls()
    failures = (out.filter(pl.col("event").is_in(["data", "reply"]) & (pl.col("reply") >= 400))
                .join(answered, on=["session", "source", "line"], how="anti")  # no command's own reply
                .select("session", "source", pl.col("line").alias("fail_line")).sort("fail_line"))
    if failures.is_empty():
        return pl.Series([False] * rcpts.height)
    mails = (out.filter(pl.col("event") == "mail").select("session", "source", pl.col("line").alias("mail_line"))
             .sort("mail_line"))
    keyed = rcpts.select(pl.int_range(pl.len()).alias("_r"), "session", "source", "line").sort("line")
    keyed = keyed.join_asof(failures, left_on="line", right_on="fail_line", by=["session", "source"],
                            strategy="forward", check_sortedness=False)
    keyed = keyed.join_asof(mails, left_on="line", right_on="mail_line", by=["session", "source"],
                            strategy="forward", check_sortedness=False)
    failed = pl.col("fail_line").is_not_null() & (pl.col("mail_line").is_null()
                                                   | (pl.col("fail_line") < pl.col("mail_line")))
    return keyed.sort("_r").select(failed.fill_null(False))[:, 0]


def assess_recipients(events: pl.DataFrame, site: SiteProfile) -> pl.DataFrame:
    """Every inbound recipient with its form, effective recipient, trust, verdict and probe tag.

    This is the whole assessment, before deciding which recipients raise a finding.
    """
    return _assess(events, site, raising_only=False)


def _trusted() -> pl.Expr:
    return pl.col("authenticated").fill_null(False) | pl.col("trusted_ip")


def _raises(trusted: pl.Expr) -> pl.Expr:
    """True when an assessed recipient raises a finding (see :func:`build_findings`)."""
    return ((pl.col("external") & ~trusted) | (pl.col("form") != "plain")
            | ((pl.col("reply") >= 400) & pl.col("reply_text").fill_null("").str.contains(RELAY_DENIAL))
            | pl.col("auth_abuse"))


def _assess(events: pl.DataFrame, site: SiteProfile, *, raising_only: bool) -> pl.DataFrame:
    """:func:`assess_recipients`; with ``raising_only``, only what can matter to findings.

    Queue recipients are screened message by message (:class:`RecipientScreen`), and only the rows of
    recipient lines (``rid``) where some recipient raises a finding go on to outbound matching and
    probe tagging. Every step after each cut depends only on the row and the other rows of its message
    or line, so the rows kept come out the same."""
    screen = RecipientScreen(site)
    rcpts = inbound_recipients(events, screen if raising_only else None, screen.classes)
    if rcpts.is_empty():
        return rcpts
    classes = screen.classes(rcpts["recipient"])
    rcpts = rcpts.join(classes, left_on="recipient", right_on="address", how="left")
    rcpts = rcpts.with_columns(
        (site.trusted_ip_mask(rcpts["client_ip"]) | rcpts["local_submit"].fill_null(False)).alias("trusted_ip"),
        (pl.col("source") + pl.lit(":") + pl.col("line").cast(pl.String)).alias("rid"),
    )
    abuse = _mark_auth_abuse(rcpts, events).select("auth_abuse", "abuse_lines")
    if raising_only:
        raising = rcpts.with_columns(abuse["auth_abuse"]).select(
            pl.col("rid").filter(_raises(_trusted()) & pl.col("recipient").is_not_null()).unique())["rid"]
        keep = rcpts["rid"].is_in(raising.implode())
        rcpts, abuse = rcpts.filter(keep), abuse.filter(keep)

    # Outbound evidence for the effective recipient (or the address as logged).
    out = outbound_evidence(events)
    unlinked = rcpts.filter(pl.col("origin") != "queue") if out.height else rcpts.clear()
    wanted = pl.concat([
        unlinked.select("rid", _key(pl.col("effective_recipient")).alias("k"), "ts", "server",
                     _key(pl.col("sender")).alias("rsender")),
        unlinked.select("rid", _key(pl.col("recipient")).alias("k"), "ts", "server",
                     _key(pl.col("sender")).alias("rsender")),
    ]).unique()
    matched = wanted.join(out.rename({"ts": "out_ts", "server": "out_server"}), on="k").filter(
        (pl.col("out_ts") >= pl.col("ts") - MATCH_BEFORE) & (pl.col("out_ts") <= pl.col("ts") + MATCH_AFTER)
        & pl.col("server").eq_missing(pl.col("out_server"))
        & (~pl.col("rsender").fill_null("").str.contains("@")
           | ~pl.col("sender_k").fill_null("").str.contains("@")
           | (pl.col("rsender") == pl.col("sender_k")))
    )
    # Each piece once, by line, then path (files of one time often share line numbers): deterministic.
    piece = pl.struct(pl.col("source").alias("path"), "line", "line2").unique()
    relayed = matched.group_by("rid").agg(
        piece.sort_by(piece.struct.field("line"), piece.struct.field("path"), piece.struct.field("line2"))
        .alias("out_lines"),
        pl.col("proof").any().alias("out_proof"),
    )
    rcpts = rcpts.join(relayed, on="rid", how="left").with_columns(
        pl.when(pl.col("origin") == "queue")
        .then(pl.when(pl.col("delivered_out")).then(pl.col("linked")))
        .otherwise(pl.col("out_lines")).alias("out_lines"),
        pl.when(pl.col("origin") == "queue").then(pl.col("delivered_out").fill_null(False))
        .otherwise(pl.col("out_proof").fill_null(False)).alias("out_proof"))

    # A 4xx/5xx answer, or a refusal logged without its code (Sendmail "... User unknown").
    is_refused = (pl.col("reply") >= 400) | (pl.col("reply").is_null()
                                             & pl.col("status").is_in(["rejected", *DATA_REFUSALS]))
    rcpts = rcpts.with_columns(
        pl.when(is_refused).then(pl.lit("refused"))
        .when(pl.col("out_proof")).then(pl.lit("relayed"))
        .when(pl.col("reply").is_null()).then(pl.lit("attempted"))
        .otherwise(pl.lit("accepted")).alias("verdict"),
        _trusted().alias("trusted"),
    ).with_columns(abuse.get_columns())
    probes = session_probes(_rows(
        events, (pl.col("direction") == "in") & pl.col("session").is_not_null()
        & (pl.col("helo").is_not_null() | pl.col("sender").is_not_null() | pl.col("recipient").is_not_null()),
        ["session", "helo", "sender", "recipient"]))
    rcpts = rcpts.join(probes, on="session", how="left")
    return rcpts.with_columns(pl.coalesce(pl.col("probe"), probe_by_values(rcpts)).alias("probe"))


def build_findings(events: pl.DataFrame, site: SiteProfile, sha256: dict[str, str],
                   line_texts: LineTexts) -> pl.DataFrame:
    """All findings for these events, sorted by time; columns :data:`FINDING_COLUMNS`.

    A recipient raises a finding when its effective destination is external and the client was
    neither authenticated nor trusted, when its form is not ``plain``, or when the server refused
    it saying it does not relay. Built with whole-column operations (no per-finding Python).
    """
    rcpts = _assess(events, site, raising_only=True)
    if rcpts.is_empty():
        return empty_findings()
    rcpts = rcpts.filter(_raises(pl.col("trusted")) & pl.col("recipient").is_not_null())
    if rcpts.is_empty():
        return empty_findings()
    rcpts = rcpts.sort("ts", "source", "line").with_row_index("_i").with_columns(
        pl.col("form").fill_null("unparseable"), pl.col("trusted").fill_null(False),
        pl.col("external").fill_null(False))
    rcpts = rcpts.join(_rule_table(rcpts, site),
                       on=["form", "imcea_type", "verdict", "trusted", "external", "auth_abuse"],
                       how="left", nulls_equal=True)
    rcpts = rcpts.join(evidence_lists(rcpts, sha256, line_texts), on="_i", how="left")
    # Stable across runs: the recipient's line, plus the recipient itself (one arrival line of an MTA
    # log stands for every recipient of its message).
    out = rcpts.with_columns(_finding_ids(rcpts).alias("id"), _explanation(site).alias("explanation_text"))
    return out.select(
        "id", "rule", "form", "verdict", "severity", pl.col("ts").alias("time"), "server", "client_host",
        "client_ip", "authenticated", "auth_user", "sender", "recipient", "effective_recipient", "external",
        pl.col("explanation_text").alias("explanation"), "probe",
        pl.col("evidence").fill_null(pl.lit([], pl.List(EVIDENCE_STRUCT))),
    ).cast(finding_schema())


def _finding_ids(rcpts: pl.DataFrame) -> pl.Series:
    """``"F-"`` and the first 12 hex digits of the SHA-1 of ``f"{source}:{line}:{recipient}"``, per row: the
    text is built and hex-encoded in Polars, only the digest runs in Python."""
    text = pl.concat_str([pl.col(c).cast(pl.String).fill_null("None") for c in ("source", "line", "recipient")],
                         separator=":")
    keys = rcpts.select(text.cast(pl.Binary)).to_series().to_list()
    digests = pl.Series([hashlib.sha1(k, usedforsecurity=False).digest() for k in keys], dtype=pl.Binary)
    return pl.select(pl.lit("F-") + digests.bin.encode("hex").str.slice(0, 12)).to_series()


def _rule_table(rcpts: pl.DataFrame, site: SiteProfile) -> pl.DataFrame:
    """Rule and severity for each distinct (form, IMCEA type, verdict, trusted, external, auth_abuse)."""
    rows = []
    for form, imcea_type, verdict, trusted, external, abuse in rcpts.select(
            "form", "imcea_type", "verdict", "trusted", "external", "auth_abuse").unique().iter_rows():
        rule = rule_registry.rule_for(form, imcea_type)
        if abuse and form == "plain":
            rule = rule_registry.RULES["LF-AUTH-ABUSE"]
            severity = rule_registry.severity_for(rule, verdict, trusted=False, relay_policy=site.relay_policy)
        elif not external and (rule.id == "LF-IMCEA-OTHER" or form == "ip-literal"):
            # A non-SMTP IMCEA mailbox here, or the server's own address literal: local mail, noted.
            severity = "info"
        else:
            severity = rule_registry.severity_for(rule, verdict, trusted=bool(trusted),
                                                  relay_policy=site.relay_policy)
        rows.append((form, imcea_type, verdict, trusted, external, abuse, rule.id, severity))
    return pl.DataFrame(rows, schema={"form": pl.String, "imcea_type": pl.String, "verdict": pl.String,
                                      "trusted": pl.Boolean, "external": pl.Boolean, "auth_abuse": pl.Boolean,
                                      "rule": pl.String, "severity": pl.String}, orient="row")


def evidence_lists(rcpts: pl.DataFrame, sha256: dict[str, str], line_texts: LineTexts) -> pl.DataFrame:
    """Per recipient row ``_i``: its evidence, in citing order, each line once.

    Order: the recipient's line, its reply, its record header, its raw-packet twin, the lines it is
    linked to through the queue, the failed logins an LF-AUTH-ABUSE finding rests on, then each
    piece of outbound evidence (record header first).
    """
    base = [rcpts.select("_i", pl.lit(k, pl.Int64).alias("ord"), pl.col("source").alias("path"),
                         pl.col(col).cast(pl.Int64).alias("line"))
            for k, col in enumerate(["line", "reply_line", "record_line", "raw_line"])]
    linked = (rcpts.select("_i", "linked").explode("linked").drop_nulls("linked")
              .with_columns((pl.lit(100) + pl.int_range(pl.len()).over("_i")).alias("ord"))
              .unnest("linked").select("_i", pl.col("ord").cast(pl.Int64), "path", "line"))
    failed = (rcpts.select("_i", "abuse_lines").explode("abuse_lines").drop_nulls("abuse_lines")
              .with_columns((pl.lit(5_000) + pl.int_range(pl.len()).over("_i")).alias("ord"))
              .unnest("abuse_lines").select("_i", pl.col("ord").cast(pl.Int64), "path", "line"))
    out = (rcpts.select("_i", "out_lines").explode("out_lines").drop_nulls("out_lines")
           .with_columns((pl.lit(10_000) + 3 * pl.int_range(pl.len()).over("_i")).alias("ord"))
           .unnest("out_lines"))
    outs = [
        out.select("_i", "ord", "path", pl.when(pl.col("line2") < pl.col("line")).then(pl.col("line2"))
                   .alias("line")),
        out.select("_i", pl.col("ord") + 1, "path", "line"),
        out.select("_i", pl.col("ord") + 2, "path", pl.col("line2").alias("line")),
    ]
    cites = (pl.concat([*base, linked, failed, *[o.with_columns(pl.col("ord").cast(pl.Int64)) for o in outs]],
                       how="vertical_relaxed")
             .drop_nulls("line").sort("_i", "ord").unique(["_i", "path", "line"], keep="first", maintain_order=True))
    wanted = cites.select("path", "line").unique()
    texts = []
    for (path,), part in wanted.partition_by("path", as_dict=True).items():
        lines = part["line"].to_list()
        texts.append(pl.DataFrame({"path": [path] * len(lines), "line": lines,
                                   "text": line_texts(path, lines)},
                                  schema={"path": pl.String, "line": pl.Int64, "text": pl.String}))
    sha = pl.DataFrame({"path": list(sha256), "sha256": list(sha256.values())},
                       schema={"path": pl.String, "sha256": pl.String})
    # Both lookups are unique on their keys, and keep the (_i, ord) order of the citations.
    cites = cites.join(pl.concat(texts), on=["path", "line"], how="left", maintain_order="left").join(
        sha, on="path", how="left", maintain_order="left")
    return cites.select("_i", pl.struct("path", "line", pl.col("sha256").fill_null(""), "text").alias("evidence")
                        ).group_by("_i", maintain_order=True).agg("evidence")


def _explanation(site: SiteProfile) -> pl.Expr:
    """Plain words: who offered what, standing, what the address is, what the server did, why it matters."""
    who = pl.coalesce(pl.col("client_host"), pl.col("client_ip"), pl.lit("an unknown client"))
    standing = (
        pl.when(pl.col("authenticated").fill_null(False))
        .then(pl.lit("after authenticating (235; weak evidence: a Guest-account fallback also gives 235, "
                     "KB Q251149)"))
        .when(pl.col("local_submit").fill_null(False))
        .then(pl.lit("as a local submission on the server itself (not from a network client)"))
        .when(pl.col("trusted")).then(pl.lit("from a trusted network"))
        .when(pl.col("authenticated").is_null()).then(pl.lit("(authentication unknown: tracking log only)"))
        .otherwise(pl.lit("without authenticating")))
    verdict = (
        pl.when(pl.col("verdict") == "refused")
        .then(pl.format("The server refused it ({}).",
                        pl.col("reply").cast(pl.String).fill_null(pl.col("status")).fill_null("?")))
        .when(pl.col("verdict") == "relayed")
        .then(pl.format("The server accepted it and sent it on to {}: outbound evidence is cited.",
                        pl.col("effective_recipient").fill_null(pl.col("recipient"))))
        .when(pl.col("verdict") == "attempted")
        .then(pl.lit("No reply was logged (the session is cut off) and no outbound delivery was found."))
        .when(pl.col("out_lines").is_not_null())
        .then(pl.lit("The server accepted it and queued it for delivery out (cited), but no transfer out was "
                     "found in the logs."))
        .when((pl.col("origin") == "queue") & pl.col("status").is_not_null())
        .then(pl.format("The server accepted it and tried to send it out, but the attempt ended {} (cited); "
                        "no delivery out succeeded.", pl.col("status")))
        .otherwise(pl.lit("The server accepted it, but no outbound delivery was found in the logs.")))
    text = pl.format("{} offered '{}' {}. {} {}", who, pl.col("recipient"), standing,
                     pl.col("explanation").fill_null(""), verdict)
    extra = pl.lit("")
    if site.relay_policy == "authenticated-only":
        setup = []
        if site.forward_all_to:
            setup.append(f"forwards all mail to {site.forward_all_to}")
        if site.reroute_inbound:
            setup.append("reroutes inbound SMTP mail")
        q264330 = (" This is the KB Q264330 relay: the IMS restricts relaying to clients that successfully "
                   "authenticate" + (", " + " and ".join(setup) if setup else "")
                   + ", yet it relayed a quoted IMCEA recipient for an unauthenticated client."
                   " Fixed in Exchange 5.5 SP4.")
        extra = pl.when((pl.col("rule") == "LF-Q264330") & (pl.col("verdict") == "relayed")).then(
            pl.lit(q264330)).otherwise(extra)
    abuse = (" The account logged in from outside the trusted networks after failed logins (several from the "
             "same address, or for the account from another address, within 24 hours; the cited ones) or "
             "mailed many outside domains within an hour: its password was "
             "probably guessed or stolen, and it was used to relay.")
    extra = pl.when(pl.col("rule") == "LF-AUTH-ABUSE").then(pl.lit(abuse)).otherwise(extra)
    ms99 = " IMCEASMTP one-off addresses bypassed the IMS relay checks before the MS99-027 fix."
    extra = pl.when((pl.col("rule") == "LF-MS99-027") & pl.col("verdict").is_in(["relayed", "accepted"])
                    ).then(pl.lit(ms99)).otherwise(extra)
    return text + extra


def build_findings_by_server(events: pl.DataFrame, site: SiteProfile, sha256: dict[str, str],
                             line_texts: LineTexts) -> pl.DataFrame:
    """:func:`build_findings` run on each server's events separately, with that server's profile
    (``[servers.NAME]`` overrides): bounded memory, and the unit an incremental batch run recomputes."""
    frames = [build_findings(part, site.for_server(server), sha256, line_texts)
              for (server,), part in sorted(events.partition_by("server", as_dict=True).items(),
                                            key=lambda kv: (kv[0][0] is None, kv[0][0] or ""))]
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_findings()
    return pl.concat(frames).sort("time", "id")


def finding_schema() -> dict[str, pl.DataType]:
    return {
        "id": pl.String, "rule": pl.String, "form": pl.String, "verdict": pl.String, "severity": pl.String,
        "time": pl.Datetime("us", "UTC"), "server": pl.String, "client_host": pl.String,
        "client_ip": pl.String, "authenticated": pl.Boolean, "auth_user": pl.String, "sender": pl.String, "recipient": pl.String,
        "effective_recipient": pl.String, "external": pl.Boolean, "explanation": pl.String, "probe": pl.String,
        "evidence": pl.List(EVIDENCE_STRUCT),
    }


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=finding_schema())
