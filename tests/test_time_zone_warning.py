"""Every format whose times are local wall-clock time warns when the site gives no time zone (they
are then read as UTC); stamps that carry their own offset do not."""

from __future__ import annotations

import pytest

from logforensics.site import SiteProfile
from tests.conftest import read_log

WARNING = "no time zone known; local times read as UTC"

CASES = [
    ("mail.log", "Mar  1 10:00:00 mx postfix/smtpd[100]: connect from unknown[203.0.113.5]\n", 1),
    ("mail.log", "2008-03-01T10:00:00+01:00 mx postfix/smtpd[100]: connect from unknown[203.0.113.5]\n", 0),
    ("mail.log", "2008-03-01T10:00:00 mx postfix/smtpd[100]: connect from unknown[203.0.113.5]\n", 1),
    ("maillog", "Mar  1 10:00:00 sm sendmail[700]: l11900aa000700: from=<a@b.example>, size=700, class=0, "
                "nrcpts=1, msgid=<x@b.example>, proto=SMTP, daemon=MTA, relay=b.example [203.0.113.9]\n", 1),
    ("mainlog", "2007-02-01 10:00:00 1HCk00-0000aa-AA <= a@b.example H=b.example [203.0.113.9] P=esmtp S=900\n", 1),
    ("mainlog", "2007-02-01 10:00:00 +0100 1HCk00-0000aa-AA <= a@b.example H=b.example [203.0.113.9] P=esmtp "
                "S=900\n", 0),
    ("L0000000.LOG", "6/14/00 11:50:00 PM : A connection was accepted from 203.0.113.9.\n"
                     "6/14/00 11:50:00 PM : <<< HELO x\n", 2),
]


@pytest.mark.parametrize(("name", "text", "local"), CASES)
def test_local_times_without_a_zone_are_warned_about(tmp_path, name, text, local):
    report = read_log(tmp_path, text, name=name, site=SiteProfile()).inputs[0]
    assert report.events >= 1, report.warnings
    warned = [w for w in report.warnings if WARNING in w]
    assert len(warned) == (1 if local else 0), report.warnings
    if local:
        assert warned[0].endswith(f"{local} line(s) affected")
    zoned = read_log(tmp_path / "z", text, name=name, site=SiteProfile(timezone="Europe/Berlin")).inputs[0]
    assert not [w for w in zoned.warnings if WARNING in w]
