"""Blind-test defects of the Unix MTA readers: IPv6 client addresses, short and fully qualified
server names, RFC 3164 lines with a wire priority, Postfix daemons tagged without ``postfix/``.

Every input is inline; each test fails without its fix.
"""

from __future__ import annotations

import polars as pl
import pytest

from grammars import syslog as grammar
from logforensics.detect.findings import build_findings
from logforensics.readers import sniff_format
from logforensics.readers.syslog import (
    POSTFIX_DAEMONS,
    adopt_bare_tags,
    bare_ip,
    canonical_hosts,
    split_syslog,
)
from logforensics.site import SiteProfile
from tests.conftest import read_log, rows

SITE = SiteProfile(timezone="UTC", local_domains=("initech.example",),
                   trusted_networks=("10.1.0.0/16", "fd00:1::/64"), relay_policy="authenticated-or-ip-allowlist")


def findings(result) -> pl.DataFrame:
    """The findings of an ingest result, as ``scan`` builds them."""
    return build_findings(result.events, SITE, {i.path: i.sha256 for i in result.inputs}, result.line_texts)


def _events(result, fmt: str) -> pl.DataFrame:
    assert [i.format for i in result.inputs] == [fmt], [(i.format, i.warnings) for i in result.inputs]
    return result.events.sort("line")


# -- 1. IPv6 clients: the bare address -------------------------------------------------------------

SENDMAIL_V6 = """\
May  1 10:00:00 sm6 sm-mta[100]: m41A00aa000100: ruleset=check_rcpt, arg1=<v6a@remote.example>, relay=[IPv6:2001:db8:66::9], reject=550 5.7.1 <v6a@remote.example>... Relaying denied
May  1 10:01:00 sm6 sm-mta[101]: m41A10aa000101: from=<s@spam.example>, size=700, class=0, nrcpts=1, msgid=<v6@spam.example>, proto=ESMTP, daemon=MTA-v6, relay=spam6.example [IPv6:2001:db8:66::10]
May  1 10:02:00 sm6 sm-mta[103]: m41A20aa000103: from=<peter@initech.example>, size=700, class=0, nrcpts=1, msgid=<v6c@initech.example>, proto=ESMTP, daemon=MTA-v6, relay=ws6.lan.initech.example [IPv6:fd00:1::15]
May  1 10:02:01 sm6 sm-mta[104]: m41A20aa000103: to=<v6c@remote.example>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=30700, relay=mx.remote.example. [198.51.100.170], dsn=2.0.0, stat=Sent (ok)
May  1 10:03:00 sm6 sm-mta[105]: m41A30aa000105: from=<w@initech.example>, size=700, class=0, nrcpts=1, msgid=<m@x>, proto=ESMTP, daemon=MTA-v6, relay=ws7.lan.initech.example [IPv6:::ffff:10.1.2.3]
May  1 10:03:01 sm6 sm-mta[106]: m41A30aa000105: to=<w@initech.example>, delay=00:00:01, xdelay=00:00:01, mailer=relay, pri=30700, relay=[IPv6:::1] [IPv6:::1], dsn=2.0.0, stat=Sent (ok)
May  1 10:03:02 sm6 sm-mta[107]: m41A30aa000105: to=<x@initech.example>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=30700, relay=lo. [IPv6:::ffff:127.0.0.1], dsn=2.0.0, stat=Sent (ok)
May  1 10:04:00 sm6 sm-mta[108]: ruleset=check_relay, arg1=[IPv6:2001:db8:66::11], arg2=IPv6:2001:db8:66::11, relay=[IPv6:2001:db8:66::11], reject=554 5.7.1 go away
May  1 10:05:00 sm6 sm-mta[109]: AUTH=server, relay=ws8.lan [IPv6:2001:db8:77::8], authid=peter, mech=PLAIN, bits=0
May  1 10:05:01 sm6 sm-mta[109]: m41A50aa000109: from=<peter@initech.example>, size=700, class=0, nrcpts=1, msgid=<a@b>, proto=ESMTP, daemon=MTA-v6, relay=ws8.lan [IPv6:2001:db8:77::8]
"""


def test_sendmail_ipv6_clients_are_bare_addresses(tmp_path):
    ev = _events(read_log(tmp_path, SENDMAIL_V6, name="sm6/var/log/maillog", site=SITE), "sendmail")
    by_line = {line: (host, ip) for line, host, ip in ev.select("line", "client_host", "client_ip").rows()}
    assert by_line[1] == (None, "2001:db8:66::9")  # relay=[IPv6:...] without a name
    assert by_line[2] == ("spam6.example", "2001:db8:66::10")
    assert by_line[3] == ("ws6.lan.initech.example", "fd00:1::15")
    assert by_line[5] == ("ws7.lan.initech.example", "10.1.2.3")  # IPv4-mapped
    assert by_line[8][1] == "2001:db8:66::11"  # check_relay arg2=IPv6:...
    assert not ev["client_ip"].drop_nulls().str.to_lowercase().str.contains("ipv6").any()
    # trusted_networks now match the workstation (IPv6 and IPv4-mapped)
    assert SITE.is_trusted_ip(by_line[3][1]) and SITE.is_trusted_ip(by_line[5][1])
    assert not SITE.is_trusted_ip(by_line[2][1])
    # loopback next hops written as IPv6 (also IPv4-mapped) are local deliveries
    directions = dict(ev.filter(pl.col("event") == "deliver").select("line", "direction").rows())
    assert directions == {4: "out", 6: "local", 7: "local"}
    # AUTH=server with an IPv6 client still reaches the session's from= line
    assert ev.filter(pl.col("line") == 10)["auth_user"].to_list() == ["peter"]


EXIM_V6 = """\
2008-05-01 10:00:00 H=[IPv6:2001:db8:66::11]:40000 F=<s@spam.example> rejected RCPT <v6d@remote.example>: relay not permitted
2008-05-01 10:01:00 1JrGz0-0000aa-Aa <= w@initech.example H=(pc) [::ffff:10.1.2.3]:40001 P=esmtp S=700 for v6e@remote.example
2008-05-01 10:01:01 1JrGz0-0000aa-Aa => v6e@remote.example R=dnslookup T=remote_smtp H=filter [::ffff:127.0.0.1]
2008-05-01 10:02:00 1JrGz1-0000ab-Ab <= root@initech.example H=(localhost) [::1] P=esmtp S=700 for v6f@remote.example
2008-05-01 10:02:01 1JrGz1-0000ab-Ab => v6f@remote.example R=dnslookup T=remote_smtp H=mx.remote.example [IPv6:2001:db8:99::1]
"""


def test_exim_ipv6_clients_are_bare_addresses(tmp_path):
    ev = _events(read_log(tmp_path, EXIM_V6, name="ex6/var/log/exim4/mainlog", site=SITE), "exim")
    clients = ev.filter(pl.col("event") != "deliver").select("line", "client_ip").rows()
    assert clients == [(1, "2001:db8:66::11"), (2, "10.1.2.3"), (4, "::1")]
    assert SITE.is_trusted_ip("10.1.2.3")
    directions = dict(ev.filter(pl.col("event") == "deliver").select("line", "direction").rows())
    assert directions == {3: "local", 5: "out"}  # a loopback next hop, IPv4-mapped, is local


@pytest.mark.parametrize(("text", "bare"), [
    ("IPv6:fd00:1::15", "fd00:1::15"), ("ipv6:2001:DB8::1", "2001:DB8::1"), ("IPv6:::1", "::1"),
    ("IPv6:::ffff:10.1.2.3", "10.1.2.3"), ("::FFFF:192.0.2.7", "192.0.2.7"),
    ("0:0:0:0:0:ffff:192.0.2.7", "192.0.2.7"), ("::ffff:0:192.0.2.7", "::ffff:0:192.0.2.7"),
    ("192.0.2.7", "192.0.2.7"), (" 192.0.2.7 ", "192.0.2.7"), ("2001:db8::ffff:1.2.3.4", "2001:db8::ffff:1.2.3.4"),
    (None, None),
])
def test_bare_ip(text, bare):
    assert pl.select(bare_ip(pl.lit(text, pl.String))).item() == bare


def test_trusted_ipv6_workstation_raises_no_finding(tmp_path):
    """ws6 (fd00:1::15, trusted) relays outside: nothing; the refusal of 2001:db8:66::9: a finding."""
    result = read_log(tmp_path, SENDMAIL_V6.split("May  1 10:03:00")[0], name="sm6/var/log/maillog", site=SITE)
    found = findings(result).select("client_ip", "verdict").sort("client_ip").rows()
    assert found == [("2001:db8:66::9", "refused")]


# -- 2. One server name for a machine's short and fully qualified host names ---------------------

def test_canonical_hosts_rule():
    hosts = pl.Series(["pfx4", "pfx4.initech.example", None, "PFX4.other.example", "mx9.initech.example",
                       "192.0.2.14", "2001:db8::1", "relay", "relay.initech.example", "relayhost.example"])
    assert canonical_hosts(hosts).to_list() == [
        "pfx4", "pfx4", None, "pfx4", "mx9.initech.example", "192.0.2.14", "2001:db8::1", "relay", "relay",
        "relayhost.example"]
    # the server name the path gives, when the file has no short name for the machine
    only_fqdn = pl.Series(["mx9.initech.example", "other.initech.example"])
    assert canonical_hosts(only_fqdn, "mx9").to_list() == ["mx9", "other.initech.example"]
    assert canonical_hosts(only_fqdn, None).to_list() == only_fqdn.to_list()
    # the file's own spelling wins over the path's
    assert canonical_hosts(pl.Series(["Mx9", "mx9.initech.example"]), "MX9").to_list() == ["Mx9", "Mx9"]
    # an IP address is never a short name, nor shortened
    assert canonical_hosts(pl.Series(["192", "192.0.2.14"]), "192").to_list() == ["192", "192.0.2.14"]


POSTFIX_JOIN = """\
Apr  1 12:00:00 pfx4 postfix/smtpd[400]: connect from unknown[203.0.113.122]
Apr  1 12:00:01 pfx4 postfix/smtpd[400]: 7C8D9EAFB0: client=unknown[203.0.113.122]
Apr  1 12:00:01 pfx4 postfix/qmgr[50]: 7C8D9EAFB0: from=<s@spam.example>, size=700, nrcpt=1 (queue active)
2008-04-01T12:00:03.000000+02:00 pfx4.initech.example postfix/smtp[402]: 7C8D9EAFB0: to=<fqdn@remote.example>, relay=mx.remote.example[198.51.100.170]:25, delay=2, delays=0.5/0/0.8/0.7, dsn=2.0.0, status=sent (250 ok)
"""


def test_canonical_hosts_of_a_postfix_file_join_the_queue_id():
    """The hosts of the blind test's file (joins/pfx4 lines 18-21): one server."""
    frame = split_syslog(pl.Series(POSTFIX_JOIN.splitlines()))
    assert frame["host"].n_unique() == 2
    assert canonical_hosts(frame["host"]).unique().to_list() == ["pfx4"]


SENDMAIL_HOSTS = """\
Mar  3 10:00:00 smhub sm-mta[200]: k23A00aa000200: from=<s@spam.example>, size=700, class=0, nrcpts=1, msgid=<q@spam.example>, proto=ESMTP, daemon=MTA, relay=[203.0.113.20]
2006-03-03T10:00:02+00:00 smhub.initech.example sm-mta[201]: k23A00aa000200: to=<victim@faraway.example>, delay=00:00:02, xdelay=00:00:01, mailer=esmtp, pri=30700, relay=mx.faraway.example. [198.51.100.9], dsn=2.0.0, stat=Sent (ok)
"""


def test_sendmail_short_and_fqdn_hosts_are_one_server(tmp_path):
    ev = _events(read_log(tmp_path, SENDMAIL_HOSTS, name="maillog", site=SITE), "sendmail")
    assert ev["server"].to_list() == ["smhub", "smhub"]
    assert ev["message"].n_unique() == 1


def test_sendmail_relay_logged_under_both_names_is_found(tmp_path):
    result = read_log(tmp_path, SENDMAIL_HOSTS, name="maillog", site=SITE)
    assert findings(result).select("server", "verdict", "recipient").rows() == [
        ("smhub", "relayed", "victim@faraway.example")]


def test_sendmail_fqdn_host_takes_the_server_name_of_the_path(tmp_path):
    ev = _events(read_log(tmp_path, SENDMAIL_HOSTS.splitlines()[1] + "\n", name="smhub/var/log/maillog.1",
                          site=SITE), "sendmail")
    assert ev["server"].to_list() == ["smhub"]


EXIM_SYSLOG_HOSTS = """\
Jan  1 10:00:00 exsys exim[300]: 1Abcde-0000aa-Aa <= s@spam.example H=(x) [203.0.113.30] P=esmtp S=700
2007-01-01T10:00:01+00:00 exsys.initech.example exim[301]: 1Abcde-0000aa-Aa => v@remote.example R=dnslookup T=remote_smtp H=mx.remote.example [198.51.100.9]
"""


def test_exim_syslog_short_and_fqdn_hosts_are_one_server(tmp_path):
    ev = _events(read_log(tmp_path, EXIM_SYSLOG_HOSTS, name="mail.log", site=SITE), "exim")
    assert ev["server"].to_list() == ["exsys", "exsys"]


# -- 3. RFC 3164 lines with a wire priority --------------------------------------------------------

PRI_LINE = ("<22>Mar  6 12:00:00 pfx3 postfix/smtpd[120]: NOQUEUE: reject: RCPT from unknown[203.0.113.20]: "
            "554 5.7.1 <env20@remote.example>: Relay access denied; from=<s@spam.example> "
            "to=<env20@remote.example> proto=ESMTP helo=<h20>")
RFC5424_LINE = ("<22>1 2008-03-06T10:00:18.003+01:00 pfx3 postfix/smtpd 118 - - NOQUEUE: reject: RCPT from "
                "unknown[203.0.113.18]: 554 5.7.1 <env18@remote.example>: Relay access denied; "
                "from=<s@spam.example> to=<env18@remote.example> proto=ESMTP helo=<h18>")


@pytest.mark.parametrize("text", [
    PRI_LINE,
    "<13>2008-03-06T10:00:13.123456+01:00 pfx3 postfix/smtpd[113]: connect from x[1.2.3.4]",
    "<0>Mar 6 12:00:00 pfx3 postfix/qmgr[5]: 1A2B3C: removed",
    "<191>Dec 31 23:59:59 mx1 sm-mta[9]: note",
])
def test_wire_priority_before_a_stamp_is_a_syslog_line(text):
    fields = grammar.parse_line(text)
    assert fields is not None and fields["host"] in ("pfx3", "mx1")
    assert "mon" in fields or "iso" in fields
    row = split_syslog(pl.Series([text])).row(0, named=True)
    for key, value in fields.items():
        assert row[key] == (int(value) if key == "pid" else value)


@pytest.mark.parametrize("text", ["<22> Mar  6 12:00:00 h postfix/smtpd[1]: x", "<1234>Mar  6 12:00:00 h t[1]: x",
                                  "<22>garbage"])
def test_wire_priority_only_right_before_a_stamp(text):
    assert split_syslog(pl.Series([text]))["host"][0] != "h"


def test_postfix_reads_wire_priority_lines_and_rfc5424_still(tmp_path):
    log = "\n".join(["Mar  6 10:00:10 pfx3 postfix/smtpd[110]: connect from x[1.2.3.4]", PRI_LINE, RFC5424_LINE,
                     "<22>Mar  6 12:00:01 pfx3 last message repeated 2 times"]) + "\n"
    result = read_log(tmp_path, log, name="pfx3/var/log/mail.log", site=SITE)
    ev = _events(result, "postfix")
    assert result.inputs[0].skipped_lines == 0, result.inputs[0].warnings
    assert rows(result, "line", "event", "recipient")[:3] == [
        (1, "connect", None), (2, "rcpt", "env20@remote.example"), (3, "rcpt", "env18@remote.example")]
    assert ev.filter(pl.col("line") == 2)["ts"].dt.strftime("%m-%d %H:%M:%S").to_list() == ["03-06 12:00:00"]
    assert ev.filter(pl.col("line") == 4)["event"].to_list() == ["note"]  # the repeat, a Postfix repeat


def test_sendmail_and_exim_read_wire_priority_lines(tmp_path):
    sendmail = ("<22>May  1 10:00:00 sm6 sm-mta[100]: m41A00aa000100: ruleset=check_rcpt, arg1=<a@remote.example>, "
                "relay=[203.0.113.9], reject=550 5.7.1 <a@remote.example>... Relaying denied\n"
                "<22>Jun 17 14:37:39 <mail.info> sm6 sm-mta[2794]: m41A00aa000101: ruleset=check_rcpt, "
                "arg1=<b@remote.example>, relay=[203.0.113.9], reject=550 5.7.1 <b@remote.example>... Relaying denied\n")
    result = read_log(tmp_path, sendmail, name="a/maillog", site=SITE)
    assert rows(result, "line", "server", "recipient") == [(1, "sm6", "a@remote.example"),
                                                           (2, "sm6", "b@remote.example")]
    assert result.inputs[0].skipped_lines == 0
    exim = ("<22>Jun 29 16:04:19 exsys exim[1234]: H=(x) [203.0.113.9] F=<s@x.example> rejected RCPT "
            "<c@remote.example>: relay not permitted\n")
    result = read_log(tmp_path, exim, name="b/mail.log", site=SITE)
    assert rows(result, "line", "server", "recipient") == [(1, "exsys", "c@remote.example")]
    assert result.inputs[0].skipped_lines == 0


def test_wire_priority_file_is_sniffed():
    assert sniff_format([PRI_LINE] * 3) == "postfix"


# -- 4. Postfix daemons tagged without postfix/ ----------------------------------------------------

BARE = [
    "Mar  6 10:00:27 pfx3 postfix/smtpd[127]: connect from unknown[203.0.113.27]",
    "Mar  6 10:00:28 pfx3 smtpd[128]: NOQUEUE: reject: RCPT from unknown[203.0.113.28]: 554 5.7.1 "
    "<env28@remote.example>: Relay access denied; from=<s@spam.example> to=<env28@remote.example> proto=ESMTP helo=<h>",
    "Mar  6 10:00:29 pfx3 qmgr[50]: 1A2B3C4D5E: removed",
    "Mar  6 10:00:30 pfx3 sendmail[51]: not Postfix's",
    "Mar  6 10:00:31 pfx3 dovecot: imap-login: x",
]


def test_bare_postfix_daemon_tags_are_adopted_with_a_warning():
    frame, warning = adopt_bare_tags(split_syslog(pl.Series(BARE)), "mail.log")
    assert frame["instance"].to_list() == ["postfix", "postfix", "postfix", "sendmail", "dovecot"]
    assert frame["program"].to_list()[:3] == ["smtpd", "smtpd", "qmgr"]
    assert warning is not None
    assert warning.startswith("mail.log: 2 lines tagged with a bare daemon name (qmgr, smtpd)")
    assert "read as Postfix" in warning and "first: line 2" in warning


def test_bare_tags_without_postfix_lines_are_left_alone_but_warned():
    lines = pl.Series(BARE[1:])
    frame, warning = adopt_bare_tags(split_syslog(lines), "mail.log")
    assert frame["instance"].to_list() == ["smtpd", "qmgr", "sendmail", "dovecot"]
    assert warning is not None and "not read" in warning and "first: line 1" in warning


def test_no_bare_tags_no_warning():
    frame = split_syslog(pl.Series([BARE[0], BARE[4]]))
    out, warning = adopt_bare_tags(frame, "mail.log")
    assert warning is None and out.equals(frame)
    assert "sendmail" not in POSTFIX_DAEMONS and "master" not in POSTFIX_DAEMONS
