"""The syslog envelope around Postfix, Sendmail, syslog-routed Exim and the other Unix MTAs.

Layouts accepted (research note generic-smtp §1), each optional part in brackets::

    [[ "<" PRI ">" ] STAMP SP] [HOST SP] TAG[ "[" PID "]" ]: SP [ "[ID " N SP FACILITY.LEVEL "] " ] MESSAGE

    STAMP = Mmm SP dd SP hh:mm:ss      RFC 3164 / rsyslog traditional; day space-, zero- or un-padded;
                                       no year, no zone
          | YYYY-MM-DDThh:mm:ss[.f][Z|+hh:mm]   RFC 3339 (rsyslog default file format)

* ``HOST`` may be short or fully qualified; aggregated loghosts mix hosts in one file.
* Published samples sometimes drop the header and start at the tag (``postfix/smtpd[10419]: ...``);
  journald exports may drop the stamp and start at the host.
* ``TAG`` may be a path (``postfix-in/submission/smtpd``) or a process title
  (``sm-acceptingconnections``).
* Solaris syslogd inserts ``[ID 801593 mail.info]`` after the tag.
* ``last message repeated N times`` is a bare syslogd line with no tag.
* FreeBSD's syslogd can log the priority after the stamp: ``Jun 17 14:37:39 <mail.info> robin sm-mta[..]``.
* Collectors that store the line as received keep the wire priority ``<PRI>`` (RFC 3164 §4.1.1,
  1-3 digits) right before the stamp: ``<22>Mar  6 12:00:00 host postfix/smtpd[1]: ...``. It is
  accepted before a stamp only and not kept (the facility is ``PRI // 8``, mail = 2). An RFC 5424
  line (``<PRI>1 TIMESTAMP ...``, :data:`RFC5424`) is another layout: ``1`` is no stamp.
"""

from __future__ import annotations

import pyparsing as pp

from grammars.common import regex_leaf

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: ``Mmm dd hh:mm:ss`` (optional fraction, as some daemons add), no year.
BSD_STAMP = (
    r"(?P<mon>" + "|".join(MONTHS) + r")[ \t]+(?P<day>[0-9]{1,2})[ \t]+"
    r"(?P<hms>[0-9]{1,2}:[0-9]{2}:[0-9]{2})(?:\.[0-9]+)?"
)

#: RFC 3339, with optional fraction and zone (``Z`` or ``+hh:mm``).
ISO_STAMP = (
    r"(?P<iso>[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)"
    r"(?P<iso_zone>Z|[+-][0-9]{2}:?[0-9]{2})?"
)

#: The wire priority ``<PRI>`` some collectors keep before the stamp (RFC 3164 §4.1.1).
WIRE_PRI = r"<[0-9]{1,3}>"

#: A program tag: a name or path, then an optional ``[pid]``, then a colon.
TAG = r"(?P<tag>[A-Za-z][A-Za-z0-9_./-]*)(?:\[(?P<pid>[0-9]+)\])?:"

#: The whole envelope. The message is everything after the tag (and Solaris' message id).
LINE = (
    r"(?:(?:" + WIRE_PRI + r")?(?:" + BSD_STAMP + r"|" + ISO_STAMP + r")[ \t]+)?"
    r"(?:<(?P<priority>[A-Za-z0-9]+\.[A-Za-z]+)>[ \t]+)?"
    r"(?:(?P<host>[^ \t\[\]]*[^ \t\[\]:])[ \t]+)?"
    + TAG
    + r"[ \t]?(?:\[ID [0-9]+ (?P<facility>[A-Za-z0-9]+\.[A-Za-z]+)\][ \t]?)?"
    r"(?P<msg>.*)$"
)

#: syslogd's own line: ``last message repeated N times`` (also ``--- ... ---``).
REPEATED = (
    r"(?:(?:" + WIRE_PRI + r")?(?:" + BSD_STAMP + r"|" + ISO_STAMP + r")[ \t]+)?(?:(?P<host>[^ \t]+)[ \t]+)?"
    r"(?:--- )?last message repeated (?P<times>[0-9]+) times?(?: ---)?[ \t]*$"
)

#: RFC 5424 on-the-wire form, as some collectors store it (research note §1.2, unconfirmed in mail
#: logs): ``<PRI>1 TIMESTAMP HOST APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]``, ``-`` for a nil value.
RFC5424 = (
    r"<(?P<pri>[0-9]{1,3})>1 (?:" + ISO_STAMP + r"|-) (?P<host>[^ \t]+) (?P<tag>[^ \t]+) (?P<pid>[^ \t]+) "
    r"(?P<msgid>[^ \t]+) (?:-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?$"
)

line = regex_leaf(LINE, "syslog line")
rfc5424 = regex_leaf(RFC5424, "rfc 5424 syslog line")
repeated = regex_leaf(REPEATED, "syslog repeat")

#: Any syslog line this module understands.
syslog_line = (repeated | line | rfc5424).set_name("syslog")


def parse_line(text: str) -> dict[str, str] | None:
    """The named fields of one syslog line, or ``None`` when it is not one."""
    for element in (line, rfc5424):
        try:
            result = element.parse_string(text, parse_all=True)
        except pp.ParseException:
            continue
        return {k: v for k, v in result.as_dict().items() if v is not None}
    return None
