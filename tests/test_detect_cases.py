"""Detection on small inline cases: each verdict, auth vs not, tracking-only, protocol-only,
midnight/day-file crossings, raw-packet duplicates, cut-off sessions, trusted networks."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from logforensics.scan import scan
from logforensics.site import SiteProfile

SITE = SiteProfile(timezone="America/Chicago", local_domains=("acme-widgets.com",),
                   server_names=("mail.acme-widgets.com",), server_ips=("192.0.2.25",),
                   trusted_networks=("10.1.0.0/16",), relay_policy="authenticated-only",
                   forward_all_to="smtp.relay-isp.net", reroute_inbound=True)
GW = "/o=Acme/ou=HQ/cn=Configuration/cn=Connections/cn=Internet Mail Service (EXCH01)"


def write(root: Path, name: str, text: str) -> None:
    p = root / "EXCH01" / "Exchsrvr" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text.replace("\n", "\r\n"))


def track(msgid: str, event: int, when: str, rcpts: list[str], partner: str = "203.0.113.77",
          sender: str = "spam@bad.example") -> str:
    head = "\t".join([msgid, str(event), when, GW, partner, "<x@bad.example>[SPOOL1]", sender, "0", "900",
                      "0", "0", "", str(len(rcpts))])
    return "\n".join([head, *rcpts]) + "\n"


def session(host: str, rcpts: list[tuple[str, str]], *, auth: bool = False, stamp: str = "6/14/00 11:50:00 PM",
            sender: str = "spam@bad.example", data: bool = True) -> str:
    lines = [f"{stamp} : A connection was accepted from {host}.", f"{stamp} : <<< HELO {host}",
             f"{stamp} : >>> 250 OK"]
    if auth:
        lines += [f"{stamp} : <<< AUTH LOGIN", f"{stamp} : >>> 334 VXNlcm5hbWU6", f"{stamp} : <<< bXdvbmc=",
                  f"{stamp} : >>> 334 UGFzc3dvcmQ6", f"{stamp} : <<< c2VjcmV0",
                  f"{stamp} : >>> 235 login authentication successful"]
    lines += [f"{stamp} : <<< MAIL FROM:<{sender}>", f"{stamp} : >>> 250 OK - mail from <{sender}>"]
    for rcpt, reply in rcpts:
        lines += [f"{stamp} : <<< RCPT TO:<{rcpt}>", f"{stamp} : >>> {reply}"]
    if data:
        lines += [f"{stamp} : <<< DATA", f"{stamp} : >>> 354 Send data.  End with CRLF.CRLF",
                  f"{stamp} : >>> 250 OK", f"{stamp} : <<< QUIT", f"{stamp} : >>> 221 closing connection"]
    return "\n".join(lines) + "\n"


def outbound(rcpts: list[str], stamp: str = "6/14/00 11:50:30 PM", sender: str = "spam@bad.example") -> str:
    lines = [f"{stamp} : A connection to smtp.relay-isp.net was established.",
             f"{stamp} : <<< 220 smtp.relay-isp.net ESMTP", f"{stamp} : >>> EHLO mail.acme-widgets.com",
             f"{stamp} : <<< 250 smtp.relay-isp.net", f"{stamp} : >>> MAIL FROM:<{sender}>",
             f"{stamp} : <<< 250 sender ok"]
    for r in rcpts:
        lines += [f"{stamp} : >>> RCPT TO:<{r}>", f"{stamp} : <<< 250 recipient ok"]
    lines += [f"{stamp} : >>> DATA", f"{stamp} : <<< 354 go", f"{stamp} : <<< 250 queued",
              f"{stamp} : >>> QUIT"]
    return "\n".join(lines) + "\n"


def verdicts(result) -> dict[str, tuple[str, str, str]]:
    return {r["recipient"]: (r["form"], r["verdict"], r["severity"])
            for r in result.findings.iter_rows(named=True)}


def test_each_verdict_from_one_unauthenticated_client(tmp_path):
    write(tmp_path, "Imcdata/Log/L0000000.LOG", session("bad.example", [
        ("victim@hotmail.com", "550 Relaying is prohibited"),
        ('"IMCEA a@yahoo.com"@acme-widgets.com', "250 OK - Recipient <x>"),
        ('"IMCEA b@aol.com"@acme-widgets.com', "250 OK - Recipient <x>"),
        ("c%gmx.de@acme-widgets.com", "250 OK - Recipient <x>"),
        ("jsmith@acme-widgets.com", "250 OK - Recipient <x>"),
    ]))
    write(tmp_path, "Imcdata/Log/L0000001.LOG", outbound(["a@yahoo.com"]))
    got = verdicts(scan([tmp_path], SITE))
    assert got == {
        "victim@hotmail.com": ("plain", "refused", "low"),
        '"IMCEA a@yahoo.com"@acme-widgets.com': ("imcea-quoted", "relayed", "critical"),
        '"IMCEA b@aol.com"@acme-widgets.com': ("imcea-quoted", "accepted", "high"),
        "c%gmx.de@acme-widgets.com": ("percent-hack", "accepted", "medium"),
    }


def test_authenticated_and_trusted_clients(tmp_path):
    write(tmp_path, "Imcdata/Log/L0000000.LOG",
          session("dialup.isp.example", [("jane@fabrikam.com", "250 OK - Recipient <x>"),
                                         ('"IMCEA z@yahoo.com"@acme-widgets.com', "250 OK - Recipient <x>")],
                  auth=True)
          + session("10.1.2.3", [("bob@partner.example", "250 OK - Recipient <x>")],
                    stamp="6/14/00 11:55:00 PM"))
    result = scan([tmp_path], SITE)
    got = verdicts(result)
    # authenticated mail to a partner and trusted-network mail raise nothing; the trick still does, lower
    assert got == {'"IMCEA z@yahoo.com"@acme-widgets.com': ("imcea-quoted", "accepted", "medium")}
    row = result.findings.row(0, named=True)
    assert row["authenticated"] is True and "Q251149" in row["explanation"]


def test_protocol_log_only_is_never_relayed(tmp_path):
    write(tmp_path, "Imcdata/Log/L0000000.LOG", session("bad.example", [
        ('"IMCEA a@yahoo.com"@acme-widgets.com', "250 OK - Recipient <x>"),
        ("open@relay-victim.example", "250 OK - Recipient <x>")]))
    got = verdicts(scan([tmp_path], SITE))
    assert {v[1] for v in got.values()} == {"accepted"}


def test_tracking_log_only(tmp_path):
    msg = "c=US;a= ;p=Acme;l=EXCH01-000615045000Z-3"
    write(tmp_path, "Tracking.log/20000615.log",
          track(msg, 1012, "2000.6.15 4:50:00", ['"IMCEA a@yahoo.com"@acme-widgets.com', "jsmith@acme-widgets.com"])
          + track(msg, 1014, "2000.6.15 4:50:01", ["a@yahoo.com"])
          + track(msg, 1010, "2000.6.15 4:50:01", ["a@yahoo.com"], partner="smtp.relay-isp.net")
          + track(msg, 1011, "2000.6.15 4:50:30", ["a@yahoo.com"], partner="smtp.relay-isp.net"))
    result = scan([tmp_path], SITE)
    assert verdicts(result) == {'"IMCEA a@yahoo.com"@acme-widgets.com': ("imcea-quoted", "relayed", "critical")}
    f = result.findings.row(0, named=True)
    assert f["authenticated"] is None
    lines = [e["line"] for e in f["evidence"]]
    assert lines[:2] == [2, 1]  # the recipient line first, then its record header
    assert len(lines) >= 5


def test_local_to_gmt_crossing_midnight_and_day_files(tmp_path):
    """11:59:50 PM CDT on 6/14 is 04:59:50 GMT on 6/15: the relay proof sits in the next day file."""
    write(tmp_path, "Imcdata/Log/L0000000.LOG", session(
        "bad.example", [('"IMCEA late@yahoo.com"@acme-widgets.com', "250 OK - Recipient <x>")],
        stamp="6/14/00 11:59:50 PM"))
    msg = "c=US;a= ;p=Acme;l=EXCH01-000615045950Z-9"
    write(tmp_path, "Tracking.log/20000614.log", track(msg, 1012, "2000.6.14 23:00:00", ["other@acme-widgets.com"]))
    write(tmp_path, "Tracking.log/20000615.log",
          track(msg, 1012, "2000.6.15 4:59:51", ['"IMCEA late@yahoo.com"@acme-widgets.com'])
          + track(msg, 1011, "2000.6.15 5:00:20", ["late@yahoo.com"], partner="smtp.relay-isp.net"))
    result = scan([tmp_path], SITE)
    f = result.findings.row(0, named=True)
    assert f["verdict"] == "relayed"
    assert f["time"].isoformat() == "2000-06-15T04:59:50+00:00"
    assert result.findings.height == 1  # the 1012 record is covered by the protocol-log RCPT
    # with the wrong zone the protocol RCPT no longer lines up with its 1012 record
    tokyo = scan([tmp_path], SiteProfile(**{**SITE.__dict__, "timezone": "Asia/Tokyo", "inferred": {}}))
    assert tokyo.findings.height == 2
    assert tokyo.findings["time"].min().isoformat() == "2000-06-14T14:59:50+00:00"


def test_duplicate_io_lines_count_once_and_cut_off_session(tmp_path):
    text = ("6/14/00 11:50:00 PM : A connection was accepted from bad.example.\n"
            "6/14/00 11:50:00 PM : <<< IO: |RCPT TO:<victim@hotmail.com>\n"
            "6/14/00 11:50:00 PM : <<< RCPT TO:<victim@hotmail.com>\n"
            "6/14/00 11:50:00 PM : >>> 250 OK - Recipient <victim@hotmail.com>\n"
            "6/14/00 11:50:01 PM : <<< IO: |RCPT TO:<\"IMCEA cut@aol.com\"@acme-widgets.com>\n"
            "6/14/00 11:50:01 PM : <<< RCPT TO:<\"IMCEA cut@aol.com\"@acme-widgets.com>")
    write(tmp_path, "Imcdata/Log/L0000000.LOG", text)
    result = scan([tmp_path], SITE)
    rows = result.findings.sort("time").select("recipient", "verdict", "evidence").rows()
    assert [(r[0], r[1]) for r in rows] == [("victim@hotmail.com", "accepted"),
                                            ('"IMCEA cut@aol.com"@acme-widgets.com', "attempted")]
    first_evidence = [e["line"] for e in rows[0][2]]
    assert first_evidence == [3, 4, 2]  # the parsed line first, then its reply, then the raw packet


def test_probe_tags(tmp_path):
    write(tmp_path, "Imcdata/Log/L0000000.LOG",
          session("scanner.example", [("relaytest@nmap.scanme.org", "550 Relaying is prohibited")],
                  sender="antispam@nmap.scanme.org", data=False)
          + session("maps.example", [("nobody@mail-abuse.org", "550 Relaying is prohibited")],
                    sender="spamtest@ns2.example.com", stamp="6/14/00 11:58:00 PM")
          + session("aol.example", [("CloseYourOpenRelay@aol.com", "550 Relaying is prohibited")],
                    sender="CloseYourOpenRelay@aol.com", stamp="6/15/00 1:00:00 AM"))
    result = scan([tmp_path], SITE)
    assert dict(result.findings.select("client_host", "probe").rows()) == {
        "scanner.example": "nmap", "maps.example": "maps", "aol.example": "aol"}
    assert sorted(result.incidents["probe"].to_list()) == ["aol", "maps", "nmap"]


def test_incidents_split_by_client_and_time_gap(tmp_path):
    write(tmp_path, "Imcdata/Log/L0000000.LOG",
          session("a.example", [("x@hotmail.com", "550 Relaying is prohibited")], stamp="6/14/00 1:00:00 PM")
          + session("a.example", [("y@hotmail.com", "550 Relaying is prohibited")], stamp="6/14/00 1:30:00 PM")
          + session("a.example", [("z@hotmail.com", "550 Relaying is prohibited")], stamp="6/14/00 5:00:00 PM")
          + session("b.example", [("w@hotmail.com", "550 Relaying is prohibited")], stamp="6/14/00 1:10:00 PM"))
    result = scan([tmp_path], SITE)
    inc = result.incidents.sort("first_seen").select("client_host", "findings").rows()
    assert inc == [("a.example", 2), ("b.example", 1), ("a.example", 1)]
    assert result.incidents["victim_domains"].to_list()[0] == []  # every recipient refused: no victim
    assert pl.Series(result.findings["incident"]).n_unique() == 3


def test_session_probes_by_distinct_values_equal_the_row_expression():
    """session_probes evaluates the fingerprints per distinct value; the per-row expression agrees."""
    import polars as pl

    from logforensics.detect.probes import probe_expr, session_probes

    rows = pl.DataFrame({
        "session": ["a", "a", "b", "b", "c", "d", "d", "e", "f", "f"],
        "helo": ["nmap.scanme.org", None, "X", None, "cygnus.mail-abuse.org", "mail.example", None, None, "X", None],
        "sender": [None, "antispam@x.example", None, "sender@example.com", None, None,
                   "CloseYourOpenRelay@aol.com", None, None, "spam@bad.example"],
        "recipient": [None, None, None, "target@example.com", None, None, None, "relaytest%x@y", None, "v@x.example"],
    })  # f: EHLO X alone is no Metasploit fingerprint
    by_row = (rows.select("session", probe_expr().alias("probe")).drop_nulls()
              .group_by("session").agg(pl.col("probe").mode().sort().first()))
    assert session_probes(rows).sort("session").rows() == by_row.sort("session").rows() == [
        ("a", "nmap"), ("b", "metasploit"), ("c", "maps"), ("d", "aol"), ("e", "nmap")]


def test_queued_or_rescheduled_is_not_relayed(tmp_path):
    """Tracking 1014/1010 (rerouted, queued outbound) and an outbound session whose DATA ended in the
    IMS's own 499 "Rescheduling delivery for later" do not show the mail left: accepted, cited."""
    rcpt = '"IMCEA q@juno.com"@acme-widgets.com'
    write(tmp_path, "Imcdata/Log/L0000000.LOG", session("bad.example", [(rcpt, "250 OK - Recipient <x>")])
          + "\n".join(["6/14/00 11:50:30 PM : A connection to smtp.relay-isp.net was established.",
                       "6/14/00 11:50:30 PM : >>> EHLO mail.acme-widgets.com", "6/14/00 11:50:30 PM : <<< 250 hi",
                       "6/14/00 11:50:30 PM : >>> MAIL FROM:<spam@bad.example>", "6/14/00 11:50:30 PM : <<< 250 ok",
                       "6/14/00 11:50:31 PM : >>> RCPT TO:<q@juno.com>", "6/14/00 11:50:31 PM : <<< 250 ok",
                       "6/14/00 11:50:31 PM : >>> DATA", "6/14/00 11:50:31 PM : <<< 354 go ahead",
                       "6/14/00 11:50:32 PM : 499 No routing hosts are reachable for juno.com. Message",
                       'subject: ""Free"". Rescheduling delivery for later.', ""]))
    msg = "c=US;a= ;p=Acme;l=EXCH01-000615045000Z-3"
    write(tmp_path, "Tracking.log/20000615.log",
          track(msg, 1012, "2000.6.15 4:50:00", [rcpt])
          + track(msg, 1014, "2000.6.15 4:50:01", ["q@juno.com"])
          + track(msg, 1010, "2000.6.15 4:50:01", ["q@juno.com"], partner="smtp.relay-isp.net"))
    result = scan([tmp_path], SITE)
    assert verdicts(result) == {rcpt: ("imcea-quoted", "accepted", "high")}
    f = result.findings.row(0, named=True)
    assert "queued it for delivery out" in f["explanation"]
    assert len(f["evidence"]) > 2  # the outbound session and the 1014/1010 records are still cited
    # The transfer out (1011) proves it.
    write(tmp_path, "Tracking.log/20000615.log",
          track(msg, 1012, "2000.6.15 4:50:00", [rcpt])
          + track(msg, 1010, "2000.6.15 4:50:01", ["q@juno.com"], partner="smtp.relay-isp.net")
          + track(msg, 1011, "2000.6.15 5:20:00", ["q@juno.com"], partner="smtp.relay-isp.net"))
    assert verdicts(scan([tmp_path], SITE)) == {rcpt: ("imcea-quoted", "relayed", "critical")}


def test_exchange_40_gateway_records_count_like_1012_and_1011(tmp_path):
    """Exchange 4.0's IMC logged internet mail in as 1004 and out as 1003 (research note §2.4)."""
    msg = "c=US;a= ;p=Acme;l=EXCH01-970303120001Z-1"
    write(tmp_path, "Tracking.log/19970303.log",
          track(msg, 1004, "1997.3.3 12:0:1", ["victim50@compuserve.com"], partner="mail.spammer.example")
          + track(msg, 1003, "1997.3.3 12:0:30", ["victim50@compuserve.com"], partner="smtp.relay-isp.net"))
    assert verdicts(scan([tmp_path], SITE)) == {"victim50@compuserve.com": ("plain", "relayed", "high")}
    # 1004 from a non-internet gateway (an MS Mail post office) is no SMTP arrival.
    write(tmp_path, "Tracking.log/19970303.log",
          track(msg, 1004, "1997.3.3 12:0:1", ["victim50@compuserve.com"], partner="MSMAIL PO1")
          + track(msg, 1003, "1997.3.3 12:0:30", ["victim50@compuserve.com"], partner="smtp.relay-isp.net"))
    assert verdicts(scan([tmp_path], SITE)) == {}


def test_literal_of_the_servers_own_address_is_info(tmp_path):
    write(tmp_path, "Imcdata/Log/L0000000.LOG", session("bad.example", [
        ("jsmith@[192.0.2.25]", "250 OK - Recipient <x>"), ("x@[198.51.100.7]", "250 OK - Recipient <x>")]))
    assert verdicts(scan([tmp_path], SITE)) == {"jsmith@[192.0.2.25]": ("ip-literal", "accepted", "info"),
                                                "x@[198.51.100.7]": ("ip-literal", "accepted", "medium")}
