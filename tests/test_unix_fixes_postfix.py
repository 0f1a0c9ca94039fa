"""Postfix halves of the blind-test fixes whose helpers live in ``readers/syslog.py``: one server name
for short and fully qualified hosts (``canonical_hosts``), and daemons tagged without ``postfix/``
(``adopt_bare_tags``). They need the reader to call the helpers (``readers/postfix.py``, owned
elsewhere): until it does, these tests are skipped; once it does, they run and must pass.
"""

from __future__ import annotations

import polars as pl
import pytest

from logforensics.detect.findings import build_findings
from logforensics.readers import postfix as postfix_reader
from logforensics.site import SiteProfile
from tests.conftest import read_log

SITE = SiteProfile(timezone="Europe/Berlin", local_domains=("initech.example",),
                   trusted_networks=("10.1.0.0/16",), relay_policy="authenticated-or-ip-allowlist")

calls = pytest.mark.skipif(
    not (hasattr(postfix_reader, "canonical_hosts") and hasattr(postfix_reader, "adopt_bare_tags")),
    reason="readers/postfix.py does not call canonical_hosts/adopt_bare_tags yet")

# The blind test's joins/pfx4 lines 17-20: the delivery is logged under the FQDN (RFC 3339 template).
JOIN = """\
Apr  1 12:00:00 pfx4 postfix/smtpd[400]: connect from unknown[203.0.113.122]
Apr  1 12:00:01 pfx4 postfix/smtpd[400]: 7C8D9EAFB0: client=unknown[203.0.113.122]
Apr  1 12:00:01 pfx4 postfix/qmgr[50]: 7C8D9EAFB0: from=<s@spam.example>, size=700, nrcpt=1 (queue active)
2008-04-01T12:00:03.000000+02:00 pfx4.initech.example postfix/smtp[402]: 7C8D9EAFB0: to=<fqdn@remote.example>, relay=mx.remote.example[198.51.100.170]:25, delay=2, delays=0.5/0/0.8/0.7, dsn=2.0.0, status=sent (250 ok)
"""


@calls
def test_short_and_fqdn_hosts_are_one_server_and_the_relay_is_found(tmp_path):
    result = read_log(tmp_path, JOIN, name="mail.log", site=SITE)
    assert result.events["server"].unique().to_list() == ["pfx4"]
    found = build_findings(result.events, SITE, {i.path: i.sha256 for i in result.inputs}, result.line_texts)
    assert found.select("server", "verdict", "client_ip", "recipient").rows() == [
        ("pfx4", "relayed", "203.0.113.122", "fqdn@remote.example")]


@calls
def test_fqdn_only_file_takes_the_server_name_of_the_path(tmp_path):
    result = read_log(tmp_path, JOIN.splitlines()[3] + "\n", name="pfx4/var/log/mail.log", site=SITE)
    assert result.events["server"].to_list() == ["pfx4"]


BARE = """\
Mar  6 10:00:27 pfx3 postfix/smtpd[127]: connect from unknown[203.0.113.27]
Mar  6 10:00:28 pfx3 smtpd[128]: NOQUEUE: reject: RCPT from unknown[203.0.113.28]: 554 5.7.1 <env28@remote.example>: Relay access denied; from=<s@spam.example> to=<env28@remote.example> proto=ESMTP helo=<h28>
Mar  6 10:00:29 pfx3 dovecot: imap-login: Login: user=<x>
"""


@calls
def test_bare_daemon_tag_is_read_as_postfix_with_a_warning(tmp_path):
    result = read_log(tmp_path, BARE, name="pfx3/var/log/mail.log", site=SITE)
    report = result.inputs[0]
    ev = result.events.sort("line")
    assert ev.select("line", "event", "recipient", "reply").rows() == [
        (1, "connect", None, None), (2, "rcpt", "env28@remote.example", 554)]
    assert ev.filter(pl.col("line") == 2)["client_ip"].to_list() == ["203.0.113.28"]
    assert any("1 lines tagged with a bare daemon name (smtpd)" in w and "first: line 2" in w
               for w in report.warnings), report.warnings
