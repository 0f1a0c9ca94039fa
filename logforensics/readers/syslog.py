"""The syslog envelope as columns, and syslog time (no year, no zone) as UTC.

Every syslog-based reader (Postfix, Sendmail, syslog-routed Exim) starts with :func:`split_syslog`
and :func:`syslog_times`. The envelope grammar is ``grammars.syslog``; its one pattern runs here
over the whole column.

Year inference (RFC 3164 stamps carry no year), in order of authority:

1. ``--year``: the year of the first dated line of the oldest file of each rotation
   (``ReadContext.year_hint.start_year``); each newer file of it starts at or after the month its
   next older file ended (``start_at``).
2. RFC 3339 lines in the same file: their own year anchors the year-less lines around them.
3. The end anchor: the file's last line was written no later than the month of the next newer
   rotated file's first line (rotation order: ``mail.log.2.gz`` is older than ``mail.log.1``),
   or, for the newest file, than the file's modification time.

Inside a file, a month that falls back by more than six months (Dec -> Jan) starts the next year.

Server names (:func:`canonical_hosts`). The syslog HOSTNAME may be short or fully qualified, and one
machine's lines can carry both (rsyslog's RFC 3339 template writes the FQDN where the traditional
one wrote the short name). A host that is a fully qualified name (it holds a dot and is no IP
address) whose first label equals, ignoring case, a short host name (no dot) seen in the same file,
or else the server name the path gives (``ReadContext.server``), is that short name, spelled as the
file (else the path) spells it: ``pfx4.initech.example`` next to ``pfx4`` is ``pfx4``. Other hosts
stay as logged. The Sendmail and Exim readers apply it to the envelope's ``host`` before it becomes
``server`` and keys sessions, so queue ids join across both spellings.

Client addresses (:func:`bare_ip`): Sendmail writes IPv6 clients as ``[IPv6:fd00:1::15]``; the
``IPv6:`` tag is dropped, and an IPv4-mapped IPv6 address (``::ffff:10.1.2.3``) is given as the IPv4
address it maps (``10.1.2.3``), so ``trusted_networks`` and incidents see one address per client.

Bare daemon tags (:func:`adopt_bare_tags`): some syslog setups log Postfix's daemons without the
``postfix/`` part of the tag (``smtpd[128]: connect from ...``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from grammars import syslog as grammar
from grammars.common import anchored
from logforensics.schema import UTC_DATETIME
from logforensics.timeconv import wall_clock_series_to_utc, wall_clock_to_utc

MONTH_NUMBER = {name: i for i, name in enumerate(grammar.MONTHS, start=1)}

#: A month earlier than the previous line's by more than this starts a new year (Dec -> Jan = 11).
ROLLOVER_MONTHS = 6


#: ``YearHint.end_source`` of the modification-time anchor.
MTIME_SOURCE = "file modification time"


@dataclass(frozen=True)
class YearHint:
    """What is known, outside the lines, about the year of a year-less log file."""

    start_year: int | None = None
    #: (year, month): the file's first line was written in this month or after (the last line of the
    #: next older file of its rotation, when ``--year`` dated the oldest one).
    start_at: tuple[int, int] | None = None
    #: (year, month): the file's last line was written in this month or before.
    end_at: tuple[int, int] | None = None
    #: Where ``end_at`` came from, for the warning/notes (``mtime``, ``rotation``).
    end_source: str = ""

    @staticmethod
    def from_mtime(mtime: float | None) -> YearHint:
        if mtime is None:
            return YearHint()
        when = datetime.fromtimestamp(mtime, UTC)
        return YearHint(end_at=(when.year, when.month), end_source=MTIME_SOURCE)


#: Envelope columns of :func:`split_syslog`, in order (the named groups of ``grammar.LINE``).
ENVELOPE_COLUMNS = ("mon", "day", "hms", "iso", "iso_zone", "priority", "host", "tag", "pid", "facility", "msg")

#: The everyday layout, ``Mmm dd hh:mm:ss host tag[pid]: msg`` (``[pid]`` optional) with single
#: spaces, a two-character day and a printable ASCII host, which fixes every field's place: the stamp
#: is sliced at fixed offsets, the host runs to the first space after it, the message starts after
#: the first ``": "`` (the stamp's colons are followed by digits, the host holds no space and does
#: not end in ``:``, the tag holds no colon). Everything before the message is ASCII, so the byte
#: offsets ``str.find`` gives are character offsets. On such a line ``grammar.LINE`` has exactly one
#: reading, the same: no priority (the host cannot start with ``<``), the host is the whole word (no
#: ``[ ] :`` at its end), the tag runs to ``[`` or ``:``. Lines whose message starts ``[ID ``
#: (Solaris) or that hold a newline take the full pattern. The pid needs no slice of its own: the
#: stamp and the host hold no ``[`` (the host's class leaves out ``[ ]``), so the line's first ``[``,
#: when it comes before the first ``": "``, is the tag's pid bracket (tag = up to it, pid = from it to
#: the ``]`` just before ``": "``); a first ``[`` after that is in the message, and the tag has no pid.
#: tests/test_read_speedpaths.py checks it (edge lines mixed with others, and all fixed).
FIXED_BSD = (r"^(?:" + "|".join(grammar.MONTHS) + r") [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} "
             r"[!-;=-Z\\^-~]*[!-9;=-Z\\^-~] [A-Za-z][A-Za-z0-9_./-]*(?:\[[0-9]+\])?: ")


def split_syslog(lines: pl.Series) -> pl.DataFrame:
    """Columns ``line, raw`` plus the envelope's named groups; ``program`` is the tag's last part.

    Lines that are not syslog lines keep nulls in every envelope column. Lines in the
    :data:`FIXED_BSD` layout are split without the full pattern; the others run ``grammar.LINE``.
    """
    frame = pl.DataFrame({"raw": lines}).with_row_index("line", offset=1)
    frame = frame.with_columns(pl.col("line").cast(pl.Int64))
    raw = pl.col("raw")
    # Fixed lines: the stamp at its offsets, the host to the next space, ``tag[pid]`` to ``": "``.
    frame = frame.with_columns(
        (raw.str.contains(FIXED_BSD) & ~raw.str.contains("\n", literal=True)).fill_null(False).alias("fixed_"),
        raw.str.find(": ", literal=True).alias("colon_"),
        raw.str.slice(16).str.find(" ", literal=True).alias("host_len_"),
        raw.str.find("[", literal=True).alias("bracket_"),
    )
    colon = pl.col("colon_")
    tag_start = pl.col("host_len_") + 17
    # The line's first ``[`` is the pid's when it comes before the first ``": "`` (see FIXED_BSD).
    has_pid = (pl.col("bracket_") < colon).fill_null(False)
    tag_end = pl.when(has_pid).then(pl.col("bracket_")).otherwise(colon)
    frame = frame.with_columns(
        raw.str.slice(colon + 2).alias("msg_"),
    ).with_columns(
        (pl.col("fixed_") & ~pl.col("msg_").str.starts_with("[ID ")).fill_null(False).alias("fixed_"),
    )
    bracket = pl.col("bracket_")
    by_offset = {
        "mon": raw.str.slice(0, 3),
        "day": raw.str.slice(4, 2).str.strip_chars_start(" "),
        "hms": raw.str.slice(7, 8),
        "host": raw.str.slice(16, pl.col("host_len_")),
        "tag": raw.str.slice(tag_start, tag_end - tag_start),
        "pid": pl.when(has_pid).then(raw.str.slice(bracket + 1, colon - bracket - 2)),
        "msg": pl.col("msg_"),
    }
    is_fixed = pl.col("fixed_")
    all_fixed = frame["fixed_"].all()
    if all_fixed:
        frame = frame.select("line", "raw", *(by_offset.get(name, pl.lit(None, pl.String)).alias(name)
                                              for name in ENVELOPE_COLUMNS))
    else:  # the others: the full envelope pattern
        slow = pl.when(is_fixed).then(None).otherwise(raw).str.extract_groups(anchored(grammar.LINE))
        frame = frame.with_columns(slow.alias("g")).select(
            "line", "raw",
            *((pl.when(is_fixed).then(by_offset[name]).otherwise(pl.col("g").struct.field(name))
               if name in by_offset else pl.col("g").struct.field(name)).alias(name)
              for name in ENVELOPE_COLUMNS),
        )
    rfc5424 = (pl.col("tag").is_null() & raw.str.starts_with("<")).fill_null(False)
    # Every fixed line has a tag (at least one letter), so RFC 5424 lines are only among the others.
    if not all_fixed and frame.select(rfc5424.any()).item():  # their columns from their own pattern
        g = pl.when(rfc5424).then(raw).otherwise(None).str.extract_groups(anchored(grammar.RFC5424))
        frame = frame.with_columns(g.alias("r")).with_columns(
            *(pl.coalesce(pl.col(name), pl.col("r").struct.field(name)).alias(name)
              for name in ("iso", "iso_zone", "host", "tag", "pid", "msg")),
        ).with_columns(pl.when(pl.col("r").struct.field("tag").is_not_null())
                       .then(pl.col("msg").fill_null("")).otherwise(pl.col("msg")).alias("msg")).drop("r")
    # Tags repeat: split each distinct tag once.
    # Tags repeat: split each distinct tag once, and join the parts back (one hash lookup per line;
    # a null tag matches no row of the table, so its program and instance are null).
    tags = frame["tag"].unique().drop_nulls()
    parts = tags.str.split("/")
    table = pl.DataFrame({"tag": tags, "program": parts.list.last(), "instance": parts.list.first()})
    return frame.with_columns(pl.col("pid").cast(pl.Int64, strict=False)).join(
        table, on="tag", how="left", maintain_order="left")


#: An IP address written as a host name (IPv4 dotted, or any text with a colon).
_IP_TEXT = re.compile(r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|.*:.*)$")


def canonical_hosts(host: pl.Series, server: str | None = None) -> pl.Series:
    """The envelope's ``host`` column with each machine under one name (module docstring, "Server
    names"): a fully qualified host whose first label is a short host name of the same file, or
    else ``server`` (the name the path gives), becomes that short name. Nulls stay null.

    The rule runs over the distinct hosts (a file has few), and the column is rewritten only when
    some host changes.
    """
    distinct = [h for h in host.unique().drop_nulls().to_list() if h]
    shorts: dict[str, str] = {}
    for name in sorted(h for h in distinct if "." not in h and not _IP_TEXT.match(h)):
        shorts.setdefault(name.lower(), name)
    if server and "." not in server and not _IP_TEXT.match(server):
        shorts.setdefault(server.lower(), server)
    mapping = {}
    for name in distinct:
        if "." not in name or _IP_TEXT.match(name):
            continue
        target = shorts.get(name.split(".", 1)[0].lower())
        if target is not None:
            mapping[name] = target
    if not mapping:
        return host
    return host.replace(mapping)


#: An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, ``0:0:0:0:0:ffff:a.b.c.d``): group 1 is the IPv4.
_MAPPED_V4 = r"(?i)^(?:(?:0{1,4}:){5}|::(?:0{1,4}:)?)ffff:([0-9]{1,3}(?:\.[0-9]{1,3}){3})$"


def bare_ip(ip: pl.Expr) -> pl.Expr:
    """A client address as the bare address: ``IPv6:fd00:1::15`` -> ``fd00:1::15`` (Sendmail's tag
    for IPv6, any case), ``::ffff:10.1.2.3`` (also after ``IPv6:``) -> ``10.1.2.3``; other text as it
    is (surrounding blanks dropped), null stays null."""
    return ip.str.strip_chars().str.replace(r"^(?i:ipv6:)", "").str.replace(_MAPPED_V4, "$1")


#: Postfix daemon names (research note §2.1) that are read as Postfix when logged without the
#: ``postfix/`` part of the tag. ``sendmail`` (Sendmail's own tag) and ``master`` are not among them.
POSTFIX_DAEMONS = ("smtpd", "smtp", "lmtp", "qmgr", "oqmgr", "cleanup", "pickup", "local", "virtual",
                   "pipe", "bounce", "defer", "trace", "error", "discard", "postscreen", "dnsblog",
                   "tlsproxy", "anvil", "scache", "verify", "trivial-rewrite", "tlsmgr", "proxymap",
                   "postdrop", "showq", "flush")


def adopt_bare_tags(frame: pl.DataFrame, source: str, family: str = "postfix",
                    daemons: tuple[str, ...] = POSTFIX_DAEMONS) -> tuple[pl.DataFrame, str | None]:
    """Lines of :func:`split_syslog` whose whole tag is one of ``daemons`` (``smtpd[128]:`` where
    Postfix writes ``postfix/smtpd[128]:``), and a warning about them (file, count, first line).

    When the file also has lines of ``family`` (a tag whose first part starts with it, as the
    sniffer saw), these lines become the family's: their ``instance`` is ``family`` (``program``
    stays the daemon). Otherwise they are left alone, and the warning says they were not read.
    Without such lines the frame is returned as it is, with no warning.
    """
    bare = frame["tag"].is_in(list(daemons)).fill_null(False)
    count = int(bare.sum())
    if not count:
        return frame, None
    first = frame.filter(bare)["line"][0]
    names = ", ".join(sorted(set(frame.filter(bare)["tag"].to_list())))
    own = frame["instance"].str.starts_with(family).fill_null(False).any()
    what = (f"read as {family.capitalize()} lines" if own
            else f"not read: no {family}/ line in the file says they are {family.capitalize()}'s")
    warning = (f"{source}: {count} lines tagged with a bare daemon name ({names}) without '{family}/'; "
               f"{what} (first: line {first})")
    if not own:
        return frame, warning
    return frame.with_columns(pl.when(bare).then(pl.lit(family)).otherwise(pl.col("instance"))
                              .alias("instance")), warning


def _anchor_year(month: pl.Series, k: pl.Series, hint: YearHint | None, iso_year: pl.Series
                 ) -> tuple[pl.Series | None, str | None]:
    """Per-line year for year-less lines, and a warning when nothing anchored it."""
    if hint is not None and hint.start_year is not None:
        return k + hint.start_year, None
    dated = month.is_not_null()
    if hint is not None and hint.start_at is not None and dated.any():
        first = dated.arg_true()[0]
        start_year, start_month = hint.start_at
        first_year = start_year if int(month[first]) >= start_month else start_year + 1
        return k + (first_year - int(k[first])), None
    iso_rows = iso_year.is_not_null()
    if iso_rows.any():
        first = iso_rows.arg_true()[0]
        return k + (int(iso_year[first]) - int(k[first])), None
    if not dated.any():
        return None, None
    last = dated.arg_true()[-1]
    last_month, last_k = int(month[last]), int(k[last])
    if hint is not None and hint.end_at is not None:
        end_year, end_month = hint.end_at
        last_year = end_year if last_month <= end_month else end_year - 1
        note = None
        if hint.end_source == MTIME_SOURCE:  # the weakest anchor: say so, copies reset it
            note = (f"year taken from the file modification time: the last line is assumed to be from "
                    f"{last_year}; if this file was copied (new modification time), keep its rotation "
                    "name or pass --year")
        return k + (last_year - last_k), note
    now = datetime.now(UTC)
    last_year = now.year if last_month <= now.month else now.year - 1
    return k + (last_year - last_k), ("no year known (no --year, no modification time); "
                                      f"assumed the last line is from {last_year}")


def wall_clock_stamps(frame: pl.DataFrame) -> int:
    """How many split syslog lines carry a wall-clock stamp (RFC 3164, or RFC 3339 without offset)."""
    return frame.select((pl.col("mon").is_not_null()
                         | (pl.col("iso").is_not_null() & pl.col("iso_zone").is_null())).sum()).item()


def syslog_times(frame: pl.DataFrame, zone: str, hint: YearHint | None) -> tuple[pl.Series, str | None]:
    """UTC timestamps for split syslog lines (null where a line has no stamp), and a warning if any.

    ``frame`` needs ``mon, day, hms, iso, iso_zone``; RFC 3339 stamps without an offset and all
    RFC 3164 stamps are wall-clock time in ``zone``.

    Neighbouring lines mostly share their stamp: each run of equal stamp fields is converted once
    (the year rolls over only where the month changes, so a run has one year).
    """
    stamps = frame.select("mon", "day", "hms", "iso", "iso_zone")
    run = stamps.select(pl.struct(pl.all()).rle_id().alias("run"))["run"]
    # Run ids count up from 0 by one at each change, so a run's first line is where the id changes
    # (the same rows as ``run.is_first_distinct()``, without hashing).
    first = (run != run.shift(1)).fill_null(True)
    ts, warning = _run_times(stamps.filter(first), zone, hint)
    return ts.gather(run), warning


def _run_times(frame: pl.DataFrame, zone: str, hint: YearHint | None) -> tuple[pl.Series, str | None]:
    """:func:`syslog_times` of the first line of each run.

    RFC 3164 stamps go through :func:`wall_clock_series_to_utc` (once per minute); RFC 3339 stamps,
    when the file has any, through the expression path.
    """
    month = frame["mon"].replace_strict(MONTH_NUMBER, default=None, return_dtype=pl.Int32)
    has_iso = frame["iso"].null_count() < frame.height
    if has_iso:
        iso_naive = frame["iso"].str.replace(" ", "T").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False,
                                                                        time_unit="us")
        month = month.fill_null(iso_naive.dt.month().cast(pl.Int32))
        iso_year = iso_naive.dt.year()
    else:
        iso_year = pl.Series(None, [None] * frame.height, dtype=pl.Int32)
    previous = month.forward_fill().shift(1)
    rolled = (month < previous - ROLLOVER_MONTHS).fill_null(False)
    k = rolled.cast(pl.Int32).cum_sum()
    years, warning = _anchor_year(month, k, hint, iso_year)

    hms = frame["hms"].str.split_exact(":", 2).struct.unnest()
    bsd = wall_clock_series_to_utc(
        years if years is not None else pl.Series([None] * frame.height, dtype=pl.Int32),
        month, frame["day"].cast(pl.Int32, strict=False),
        hms["field_0"].cast(pl.Int32, strict=False), hms["field_1"].cast(pl.Int32, strict=False),
        hms["field_2"].cast(pl.Int32, strict=False), zone)
    if not has_iso:
        return bsd, warning
    parts = pl.DataFrame({"bsd": bsd, "iso": iso_naive, "iso_zone": frame["iso_zone"]})
    offset = pl.col("iso_zone").str.replace("Z", "+00:00").str.replace(r"^([+-][0-9]{2})([0-9]{2})$", "$1:$2")
    sign = pl.when(offset.str.starts_with("-")).then(-1).otherwise(1)
    offset_minutes = sign * (offset.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
                             + offset.str.slice(4, 2).cast(pl.Int64, strict=False))
    iso_with_zone = (pl.col("iso") - pl.duration(minutes=offset_minutes)).dt.replace_time_zone("UTC")
    iso_local = wall_clock_to_utc(pl.col("iso").dt.year(), pl.col("iso").dt.month(), pl.col("iso").dt.day(),
                                  pl.col("iso").dt.hour(), pl.col("iso").dt.minute(),
                                  pl.col("iso").dt.second(), zone)
    iso_local = iso_local + pl.duration(microseconds=pl.col("iso").dt.microsecond())
    ts = parts.select(
        pl.when(pl.col("iso").is_not_null())
        .then(pl.when(pl.col("iso_zone").is_not_null()).then(iso_with_zone).otherwise(iso_local))
        .otherwise(pl.col("bsd")).cast(UTC_DATETIME).alias("ts")
    )["ts"]
    return ts, warning


def last_dated_month(ts: pl.Series, zone: str) -> tuple[int, int] | None:
    """(year, month) of the last dated line, in ``zone``."""
    dated = ts.drop_nulls()
    if dated.is_empty():
        return None
    last = dated.tail(1).dt.convert_time_zone(zone)[0]
    return last.year, last.month


def first_dated_month(frame: pl.DataFrame, ts: pl.Series, zone: str) -> tuple[int, int] | None:
    """(year, month) of the first dated line, in ``zone``: the end anchor for the next older file."""
    dated = ts.drop_nulls()
    if dated.is_empty():
        return None
    first = dated.head(1).dt.convert_time_zone(zone)[0]
    return first.year, first.month
