"""The common event schema: one row per meaningful log event, whatever the log format.

Every reader returns a frame with exactly these columns, in this order (see README "Event schema").
The schema is declared once here; readers build their frames and call :func:`conform`.
"""

from __future__ import annotations

import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")

#: Column name -> (Polars type, one-line meaning). The README's schema table is generated from this.
EVENT_COLUMNS: dict[str, tuple[pl.DataType, str]] = {
    "ts": (UTC_DATETIME, "when the event happened, converted to UTC (microseconds)"),
    "source": (pl.String(), "the input path as given; archive members as `archive!member`"),
    "line": (pl.Int64(), "1-based physical line in the (decompressed) file"),
    "format": (pl.String(), "log format name, e.g. `ims55-protocol`, `ims55-tracking`"),
    "server": (pl.String(), "the mail server that wrote the log: the host a syslog line names; else the folder "
                            "of a known layout (`SERVER/var/log/...`, `SERVER/Exchsrvr/...`, `SERVER/LogFiles/...`, "
                            "`SERVER/.../TransportRoles/...`); else the innermost folder named like a server of the "
                            "site profile (a `[servers.NAME]` table or one of `server_names`); else the first of "
                            "`server_names`"),
    "session": (pl.String(), "SMTP session key, unique within a run (`source#Lstart-line`); null for "
                             "formats without sessions"),
    "message": (pl.String(), "queue id or tracking message id"),
    "direction": (pl.String(), "`in` when the server received this mail/session, `out` when it sent it "
                               "to another host, `local` for a delivery on the server itself"),
    "event": (pl.String(), "normalised event: connect, helo, auth, mail, rcpt, data, rset, quit, "
                           "starttls, command, reply, note, tracking (protocol and tracking logs); "
                           "received, queued, deliver (MTA logs; see `EVENTS`)"),
    "verb": (pl.String(), "SMTP verb upper-cased as sent (`RCPT`), or the tracking event's short name"),
    "reply": (pl.Int64(), "SMTP reply code: on a command row the code of its paired reply, "
                          "on a reply row its own code"),
    "reply_text": (pl.String(), "on a command row, the text of its paired reply"),
    "reply_line": (pl.Int64(), "on a command row, the line of its paired reply"),
    "event_id": (pl.Int64(), "the format's own event number (tracking 1011, ...)"),
    "client_host": (pl.String(), "the connecting client's host name as logged"),
    "client_ip": (pl.String(), "the connecting client's IP address, when logged"),
    "helo": (pl.String(), "the HELO/EHLO name the client gave in this session"),
    "relay_host": (pl.String(), "the next hop / peer of an outbound transfer (smart host, partner)"),
    "sender": (pl.String(), "envelope sender, without angle brackets"),
    "recipient": (pl.String(), "envelope recipient exactly as logged, without the angle brackets"),
    "orig_recipient": (pl.String(), "the recipient as the client gave it, before rewriting or aliasing "
                                    "(Postfix `orig_to=`, Exim's `<parent>`), when logged"),
    "auth_user": (pl.String(), "authenticated user name, when logged"),
    "status": (pl.String(), "delivery status, lower case (`sent`, `deferred`, `bounced`, `expired`), "
                            "or a tracking report status (`0`, ...)"),
    "transport": (pl.String(), "the delivery agent as logged (Postfix service, Sendmail mailer, "
                               "Exim transport)"),
    "size": (pl.Int64(), "message size in bytes, when logged"),
    "text": (pl.String(), "the event's payload as logged (command line, reply text, description)"),
    "raw_line": (pl.Int64(), "line of the `IO: |` raw-packet twin this event was de-duplicated from"),
    "record_line": (pl.Int64(), "first line of the multi-line record this row belongs to (tracking)"),
}

#: The MTA events (queue-based logs: Postfix, Sendmail, Exim, Exchange 2000+ tracking), what they
#: carry, and how the detectors use them. Readers of those formats emit exactly these.
EVENTS: dict[str, str] = {
    "connect": "a client connected (`client_host`, `client_ip`, `session`)",
    "rcpt": "a recipient a client offered, with the server's answer when logged (`reply`, `reply_text`); "
            "reject lines are `rcpt` rows with a 4xx/5xx `reply`",
    "received": "a message accepted into the queue from a client (`message` = queue id, `client_*`, "
                "`auth_user` when it authenticated, `sender` when logged, `recipient` when listed)",
    "queued": "the queue manager's view of a message (`message`, `sender`, `size`)",
    "deliver": "one delivery attempt for one recipient (`message`, `recipient`, `orig_recipient`, "
               "`relay_host`, `transport`, `status`; `direction` out = to another host, local = here)",
    "auth": "an authentication attempt (`auth_user`, `status` ok/failed)",
    "helo": "a HELO/EHLO, or a reject of one (`helo`, `reply`)",
    "mail": "a MAIL FROM, or a reject of one (`sender`, `reply`); Sendmail `from=` with no recipient accepted",
    "data": "a DATA/BDAT, or a reject at that stage (`reply`)",
    "command": "another SMTP command (VRFY, EXPN, ETRN, ...) with its reply when logged",
    "quit": "the client disconnected",
    "note": "any other mail-system line kept for context",
}

EVENT_SCHEMA: dict[str, pl.DataType] = {name: dtype for name, (dtype, _) in EVENT_COLUMNS.items()}


def empty_events() -> pl.DataFrame:
    """An empty frame with the event schema."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing columns as nulls, cast to the schema types, and order the columns."""
    if not frame.columns:  # selecting only literals would make one all-null row
        return empty_events()
    exprs = []
    for name, dtype in EVENT_SCHEMA.items():
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(exprs)


def schema_markdown() -> str:
    """The schema as a Markdown table (kept in the README; a test checks they agree)."""
    rows = ["| column | type | meaning |", "|---|---|---|"]
    for name, (dtype, meaning) in EVENT_COLUMNS.items():
        rows.append(f"| `{name}` | {dtype} | {meaning} |")
    return "\n".join(rows)
