"""Site profile: loading, validation errors that name the key, locality."""

from __future__ import annotations

import pytest

from logforensics.errors import SiteProfileError
from logforensics.site import Locality, load_site_profile, site_profile_from_dict

GOOD = """
name = "EXCH01"
timezone = "America/Chicago"
local_domains = ["Acme-Widgets.com."]
server_names = ["mail.acme-widgets.com"]
server_ips = ["192.0.2.25"]
trusted_networks = ["10.1.0.0/16"]
relay_policy = "authenticated-only"
forward_all_to = "smtp.relay-isp.net"
reroute_inbound = true
"""


def test_load_good_profile(tmp_path):
    p = tmp_path / "site.toml"
    p.write_text(GOOD)
    site = load_site_profile(p)
    assert site.local_domains == ("acme-widgets.com",)
    assert site.relay_policy == "authenticated-only"
    assert site.reroute_inbound is True
    assert site.is_trusted_ip("10.1.2.3") and not site.is_trusted_ip("192.0.2.1")
    assert site.to_dict()["local_domains"] == ["acme-widgets.com"]


@pytest.mark.parametrize(("data", "key"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"relay_policy": "sometimes"}, "relay_policy"),
    ({"local_domains": "x.com", "server_ips": ["not-an-ip"]}, "server_ips"),
    ({"trusted_networks": ["10.0.0.0/33"]}, "trusted_networks"),
    ({"local_domains": [1, 2]}, "local_domains"),
    ({"reroute_inbound": "yes"}, "reroute_inbound"),
    ({"time_zone": "UTC"}, "time_zone"),
    ({"ims_date_order": "YMD"}, "ims_date_order"),
])
def test_bad_values_name_the_key(data, key):
    with pytest.raises(SiteProfileError) as info:
        site_profile_from_dict(data, source="site.toml")
    assert info.value.key == key
    assert f"[{key}]" in str(info.value)


def test_toml_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "site.toml"
    p.write_text('timezone = "UTC"\nlocal_domains = [\n')
    with pytest.raises(SiteProfileError) as info:
        load_site_profile(p)
    assert info.value.line is not None
    assert str(p) in str(info.value)


def test_missing_profile_file(tmp_path):
    with pytest.raises(SiteProfileError, match="cannot read site profile"):
        load_site_profile(tmp_path / "nope.toml")


@pytest.mark.parametrize(("domain", "local"), [
    ("acme-widgets.com", True), ("ACME-WIDGETS.COM.", True), ("hq.acme-widgets.com", True),
    ("evilacme-widgets.com", False), ("mail.acme-widgets.com", True), ("[192.0.2.25]", True),
    ("[127.0.0.1]", True), ("192.0.2.25", True), ("[192.0.2.26]", False), ("hotmail.com", False),
    ("", False), (None, False),
])
def test_locality(domain, local):
    loc = Locality(("acme-widgets.com",), ("mail.acme-widgets.com",), ("192.0.2.25",))
    assert loc.is_local_domain(domain) is local


def test_server_tables_override_the_site_for_that_server(tmp_path):
    from logforensics.site import load_site_profile

    path = tmp_path / "site.toml"
    path.write_text('timezone = "UTC"\nrelay_policy = "ip-allowlist"\ntrusted_networks = ["10.0.0.0/8"]\n'
                    '[servers.EXCH01]\nrelay_policy = "authenticated-only"\ntrusted_networks = []\n')
    site = load_site_profile(path)
    assert site.for_server("exch01").relay_policy == "authenticated-only"
    assert site.for_server("EXCH01.acme-widgets.com").trusted_networks == ()
    assert site.for_server("mx1").relay_policy == "ip-allowlist"
    assert site.for_server(None) is site
    assert site.to_dict()["servers"] == {"exch01": {"relay_policy": "authenticated-only", "trusted_networks": []}}


@pytest.mark.parametrize(("table", "key"), [
    ('[servers.EXCH01]\nrelay_polcy = "open"\n', "servers.EXCH01.relay_polcy"),
    ('[servers.EXCH01]\nname = "x"\n', "servers.EXCH01.name"),
    ('[servers.EXCH01]\nrelay_policy = "sometimes"\n', "servers.EXCH01.relay_policy"),
    ('servers = "EXCH01"\n', "servers"),
])
def test_bad_server_tables_name_the_key(tmp_path, table, key):
    from logforensics.errors import SiteProfileError
    from logforensics.site import load_site_profile

    path = tmp_path / "site.toml"
    path.write_text(table)
    with pytest.raises(SiteProfileError) as err:
        load_site_profile(path)
    assert err.value.key == key and f"[{key}]" in str(err.value)


def test_findings_use_each_servers_own_relay_policy():
    """EXCH01's Q264330 relays are critical under its own authenticated-only policy, even when the
    site-wide policy (for the other servers) is different."""
    import polars as pl

    from logforensics.scan import scan
    from logforensics.site import load_site_profile
    from tests.conftest import SAMPLES

    result = scan([SAMPLES / "ims55"], load_site_profile(SAMPLES / "site.toml"))
    q = result.findings.filter((pl.col("rule") == "LF-Q264330") & (pl.col("verdict") == "relayed"))
    assert q.height == 11 and set(q["severity"]) == {"critical"}
