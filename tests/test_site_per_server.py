"""Each server is read and inferred with its own site facts: ``[servers.NAME]`` time zones and date
orders apply when its logs are read, and zero configuration never lends one server's clock,
domains or smart host to another."""

from __future__ import annotations

from pathlib import Path

from logforensics.batch import batch
from logforensics.scan import scan
from logforensics.site import SiteProfile
from tests.test_detect_cases import outbound, session, track

DOMAINS = ("acme-widgets.com",)


def write(root: Path, server: str, name: str, text: str) -> None:
    p = root / server / "Exchsrvr" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text.replace("\n", "\r\n"))


def times(result) -> dict[tuple[str, str], str]:
    return {(r["server"], r["recipient"]): r["time"].isoformat() for r in result.findings.iter_rows(named=True)}


def test_server_tables_set_zone_and_date_order_when_reading(tmp_path):
    write(tmp_path, "CHI01", "Imcdata/Log/L0000000.LOG",
          session("bad.example", [("a@hotmail.com", "550 Relaying is prohibited")], stamp="7/12/00 9:30:00 AM"))
    write(tmp_path, "LON01", "Imcdata/Log/L0000000.LOG",
          session("bad.example", [("b@hotmail.com", "550 Relaying is prohibited")], stamp="12/07/00 09:30:00"))
    site = SiteProfile(local_domains=DOMAINS, relay_policy="authenticated-only", servers={
        "chi01": {"timezone": "America/Chicago"},
        "lon01": {"timezone": "Europe/London", "ims_date_order": "DMY"}})
    result = scan([tmp_path], site)
    assert times(result) == {("CHI01", "a@hotmail.com"): "2000-07-12T14:30:00+00:00",   # CDT = UTC-5
                             ("LON01", "b@hotmail.com"): "2000-07-12T08:30:00+00:00"}   # BST = UTC+1, 12 July
    lon = [r for r in result.inputs if "LON01" in r.path]
    assert lon and not any("no time zone known" in w for r in lon for w in r.warnings)


def relay_case(root: Path, server: str, local: str, gmt: str, gmt_day: str, victim: str) -> None:
    """An unauthenticated Q264330 relay logged at ``local`` (protocol log) and ``gmt`` (tracking)."""
    rcpt = f'"IMCEA {victim}"@acme-widgets.com'
    write(root, server, "Imcdata/Log/L0000000.LOG",
          session("bad.example", [(rcpt, "250 OK - Recipient <x>")], stamp=local)
          + outbound([victim], stamp=local))
    msg = f"c=US;a= ;p=Acme;l={server}-000615045000Z-3"
    write(root, server, f"Tracking.log/{gmt_day}.log",
          track(msg, 1012, gmt, [rcpt]) + track(msg, 1011, gmt, [victim], partner="smtp.relay-isp.net"))


def test_each_server_gets_its_own_inferred_clock(tmp_path):
    relay_case(tmp_path, "CHI01", "6/14/00 11:50:00 PM", "2000.6.15 4:50:00", "20000615", "x@yahoo.com")
    relay_case(tmp_path, "LON01", "6/14/00 11:50:00 PM", "2000.6.14 22:50:00", "20000614", "y@yahoo.com")
    # A third server with a protocol log only: nothing tells its clock, so none is lent to it.
    write(tmp_path, "NYC01", "Imcdata/Log/L0000000.LOG",
          session("bad.example", [("z@hotmail.com", "550 Relaying is prohibited")], stamp="6/14/00 11:50:00 PM"))
    site = SiteProfile(local_domains=DOMAINS, relay_policy="authenticated-only")
    result = scan([tmp_path], site)
    got = times(result)
    assert got[("CHI01", '"IMCEA x@yahoo.com"@acme-widgets.com')] == "2000-06-15T04:50:00+00:00"
    assert got[("LON01", '"IMCEA y@yahoo.com"@acme-widgets.com')] == "2000-06-14T22:50:00+00:00"
    assert got[("NYC01", "z@hotmail.com")] == "2000-06-14T23:50:00+00:00"  # read as UTC, not shifted
    assert {r["verdict"] for r in result.findings.iter_rows(named=True) if r["server"] != "NYC01"} == {"relayed"}
    assert result.findings.height == 3  # each protocol RCPT lines up with its own 1012 record
    eff = result.site
    assert eff.timezone is None
    assert eff.for_server("CHI01").timezone == "Etc/GMT+5"
    assert eff.for_server("LON01").timezone == "Etc/GMT-1"
    assert eff.for_server("NYC01").timezone is None
    assert "servers.chi01.timezone" in eff.inferred and "servers.lon01.timezone" in eff.inferred
    assert eff.inferred_value("servers.lon01.timezone") == "Etc/GMT-1"
    # batch infers the same per-server facts and gives the same findings
    done = batch([tmp_path], site, tmp_path.parent / f"{tmp_path.name}-out", jobs=1, show_progress=False)
    assert done.detection.site == eff
    assert times(done.detection) == got


def test_facts_every_server_agrees_on_are_set_for_the_site(tmp_path):
    relay_case(tmp_path, "CHI01", "6/14/00 11:50:00 PM", "2000.6.15 4:50:00", "20000615", "x@yahoo.com")
    relay_case(tmp_path, "CHI02", "6/14/00 11:50:00 PM", "2000.6.15 4:50:00", "20000615", "y@yahoo.com")
    result = scan([tmp_path], SiteProfile(local_domains=DOMAINS, relay_policy="authenticated-only"))
    assert result.site.timezone == "Etc/GMT+5"
    assert "2 servers" in result.site.inferred["timezone"]
    assert not any(k.startswith("servers.") for k in result.site.inferred)


def test_relay_policy_is_not_inferred_authenticated_only_when_unauthenticated_relaying_was_accepted(tmp_path):
    refused = session("a.example", [("x@hotmail.com", "550 Relaying is prohibited")], stamp="6/14/00 10:00:00 PM")
    authed = session("b.example", [("y@hotmail.com", "250 OK - Recipient <y>")], auth=True,
                     stamp="6/14/00 10:05:00 PM")
    write(tmp_path, "EXCH01", "Imcdata/Log/L0000000.LOG", refused + authed)
    site = SiteProfile(local_domains=DOMAINS, timezone="UTC")
    assert scan([tmp_path], site).site.relay_policy == "authenticated-only"
    # The same server also accepted an outside recipient from an unauthenticated client: not that policy.
    write(tmp_path, "EXCH01", "Imcdata/Log/L0000001.LOG",
          session("c.example", [("z@hotmail.com", "250 OK - Recipient <z>")], stamp="6/14/00 10:10:00 PM"))
    assert scan([tmp_path], site).site.relay_policy == "unknown"
    out = tmp_path.parent / f"{tmp_path.name}-policy"
    assert batch([tmp_path], site, out, jobs=1, show_progress=False).detection.site.relay_policy == "unknown"


def test_local_domains_from_x500_deliveries_take_the_smtp_names_of_their_messages(tmp_path):
    """Exchange 5.5 logs local deliveries (1013) under X.500 names: the domain comes from the same
    message's 1012 (received inbound) recipients; the reason says so."""
    msg = "c=GB;a= ;p=Contoso;l=EXCHUK-000714063008Z-8"
    write(tmp_path, "EXCHUK", "Tracking.log/20000714.log",
          track(msg, 1012, "2000.7.14 6:30:08", ["sales@contoso.co.uk"])
          + track(msg, 1013, "2000.7.14 6:30:09", ["/o=Contoso Ltd/ou=LON/cn=Recipients/cn=sales"]))
    site = scan([tmp_path], SiteProfile(timezone="UTC")).site
    assert site.local_domains == ("contoso.co.uk",)
    assert "1012" in site.inferred["local_domains"] and "X.500" in site.inferred["local_domains"]


def test_a_folder_named_after_a_profile_server_names_the_server(tmp_path):
    """``logs/smtp2/mainlog`` (no known layout): the folder names a [servers.smtp2] table, so the
    findings are smtp2's and read in its time zone, not lent to the first of server_names."""
    log = tmp_path / "logs" / "smtp2" / "mainlog"
    log.parent.mkdir(parents=True)
    log.write_text("2011-06-20 09:01:45 H=(friend) [203.0.113.99] F=<s@spam.example> rejected RCPT "
                   "<mary77@gmail.com>: relay not permitted\n")
    site = SiteProfile(timezone="America/New_York", server_names=("mx1.northwind-tools.com",),
                       servers={"smtp2": {"timezone": "America/Chicago"}})
    f = scan([tmp_path / "logs"], site).findings.row(0, named=True)
    assert (f["server"], f["time"].isoformat()) == ("smtp2", "2011-06-20T14:01:45+00:00")


def test_a_clock_that_changes_for_daylight_saving_is_inferred_as_a_zone(tmp_path):
    """Without a profile, protocol-log times at UTC-4 in October and UTC-5 in November (US Eastern
    daylight saving ended on 29 Oct 2000) are read in a zone, not one fixed offset: every RCPT lines
    up with its 1012 record (no duplicate tracking findings), at the right UTC time."""
    log, track_days = [], {}
    cases = [("10/27/00", "2000.10.27", 4, "a"), ("10/27/00", "2000.10.27", 4, "b"), ("10/28/00", "2000.10.28", 4, "c"),
             ("11/8/00", "2000.11.8", 5, "d"), ("11/8/00", "2000.11.8", 5, "e"), ("11/9/00", "2000.11.9", 5, "f")]
    for n, (day, gmt_day, offset, victim) in enumerate(cases):
        rcpt = f'"IMCEA {victim}@yahoo.com"@acme-widgets.com'
        log.append(session("bad.example", [(rcpt, "250 OK - Recipient <x>")], stamp=f"{day} 11:50:00 PM"))
        y, m, d = gmt_day.split(".")
        when = f"{y}.{m}.{int(d) + 1} {offset - 1}:50:00"  # 11:50 PM local = next day (offset - 1):50 GMT
        msg = f"c=US;a= ;p=Acme;l=EXCH01-{n}"
        track_days.setdefault(f"{y}{int(m):02d}{int(d) + 1:02d}", []).append(track(msg, 1012, when, [rcpt]))
    write(tmp_path, "EXCH01", "Imcdata/Log/L0000000.LOG", "".join(log))
    for day, records in track_days.items():
        write(tmp_path, "EXCH01", f"Tracking.log/{day}.log", "".join(records))
    result = scan([tmp_path], SiteProfile(local_domains=DOMAINS))
    assert result.site.timezone == "America/New_York"
    assert "daylight saving" in result.site.inferred["timezone"]
    got = sorted(times(result).values())
    assert len(got) == 6  # one finding per recipient: no tracking duplicates an hour off
    assert got[0] == "2000-10-28T03:50:00+00:00" and got[-1] == "2000-11-10T04:50:00+00:00"
    done = batch([tmp_path], SiteProfile(local_domains=DOMAINS), tmp_path.parent / f"{tmp_path.name}-dst", jobs=1,
                 show_progress=False)
    assert sorted(times(done.detection).values()) == got
