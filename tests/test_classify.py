"""The address classifier (logforensics/classify.py): inputs and expected results side by side."""

from __future__ import annotations

import itertools
import random
import string

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grammars.address import MAX_PATH_CHARS, imcea_encode
from logforensics.classify import (
    _TRICK_WORDS,
    FORM_PRECEDENCE,
    FORMS,
    AddressClass,
    _split_fast,
    _split_with_grammar,
    classify_address,
    classify_addresses,
)
from logforensics.site import Locality

SRV = "mail.acme.example"
IP = "192.0.2.25"
ACME = Locality(local_domains=("acme.example",), server_names=(SRV,), server_ips=(IP,))
RELAYTEST = "relaytest@nmap.scanme.org"


def check(address: str, locality: Locality, form: str, effective: str | None, external: bool) -> AddressClass:
    result = classify_address(address, locality)
    assert (result.form, result.effective_recipient, result.external) == (form, effective, external), (
        result.explanation)
    assert result.address == address
    return result


# nmap smtp-open-relay.nse, all 16 tests: (test, MAIL FROM, RCPT TO, RCPT form). Every RCPT resolves to
# relaytest@nmap.scanme.org, outside the site.
NMAP = [
    (1, "<>", RELAYTEST, "plain"),
    (2, "antispam@nmap.scanme.org", RELAYTEST, "plain"),
    (3, f"antispam@{SRV}", RELAYTEST, "plain"),
    (4, f"antispam@[{IP}]", RELAYTEST, "plain"),
    (5, f"antispam@[{IP}]", f"relaytest%nmap.scanme.org@[{IP}]", "percent-hack"),
    (6, f"antispam@[{IP}]", f"relaytest%nmap.scanme.org@{SRV}", "percent-hack"),
    (7, f"antispam@[{IP}]", '"relaytest@nmap.scanme.org"', "quoted-route"),
    (8, f"antispam@[{IP}]", '"relaytest%nmap.scanme.org"', "quoted-route"),
    (9, f"antispam@[{IP}]", f"relaytest@nmap.scanme.org@[{IP}]", "double-at"),
    (10, f"antispam@[{IP}]", f'"relaytest@nmap.scanme.org"@[{IP}]', "quoted-route"),
    (11, f"antispam@[{IP}]", f"relaytest@nmap.scanme.org@{SRV}", "double-at"),
    (12, f"antispam@[{IP}]", f"@[{IP}]:relaytest@nmap.scanme.org", "source-route"),
    (13, f"antispam@[{IP}]", f"@{SRV}:relaytest@nmap.scanme.org", "source-route"),
    (14, f"antispam@[{IP}]", "nmap.scanme.org!relaytest", "bang-path"),
    (15, f"antispam@[{IP}]", f"nmap.scanme.org!relaytest@[{IP}]", "bang-path"),
    (16, f"antispam@[{IP}]", f"nmap.scanme.org!relaytest@{SRV}", "bang-path"),
]


@pytest.mark.parametrize(("test", "mail_from", "rcpt", "form"), NMAP)
def test_nmap_relay_tests(test: int, mail_from: str, rcpt: str, form: str) -> None:
    check(rcpt, ACME, form, RELAYTEST, True)
    check(f"<{rcpt}>", ACME, form, RELAYTEST, True)


# The nmap senders: (MAIL FROM, form, effective recipient, external)
NMAP_SENDERS = [
    ("<>", "plain", None, False),
    ("antispam@nmap.scanme.org", "plain", "antispam@nmap.scanme.org", True),
    (f"antispam@{SRV}", "plain", f"antispam@{SRV}", False),
    (f"antispam@[{IP}]", "ip-literal", f"antispam@[{IP}]", False),
]


@pytest.mark.parametrize(("mail_from", "form", "effective", "external"), NMAP_SENDERS)
def test_nmap_senders(mail_from: str, form: str, effective: str | None, external: bool) -> None:
    check(mail_from, ACME, form, effective, external)


# Metasploit smtp_relay (MAILTO target@example.com, serverhost from the banner, rhost = server IP):
# (RCPT TO, form, effective recipient, external)
METASPLOIT = [
    ("target@example.com", "plain", "target@example.com", True),  # EXTENDED=false, tests 1-3
    (f"touser@[{IP}]", "ip-literal", f"touser@[{IP}]", False),  # test 4: the server's own literal
    (f"target%example.com@[{IP}]", "percent-hack", "target@example.com", True),
    (f"target%example.com@{SRV}", "percent-hack", "target@example.com", True),
    ('"target@example.com"', "quoted-route", "target@example.com", True),
    ('"target%example.com"', "quoted-route", "target@example.com", True),
    (f"target@example.com@[{IP}]", "double-at", "target@example.com", True),
    (f'"target@example.com"@[{IP}]', "quoted-route", "target@example.com", True),
    (f"target@example.com@{SRV}", "double-at", "target@example.com", True),
    (f"@[{IP}]:target@example.com", "source-route", "target@example.com", True),
    (f"@{SRV}:target@example.com", "source-route", "target@example.com", True),
    ("example.com!target", "bang-path", "target@example.com", True),
    (f"example.com!target@[{IP}]", "bang-path", "target@example.com", True),
    (f"example.com!target@{SRV}", "bang-path", "target@example.com", True),
]

# MAPS relay-test.mail-abuse.org, AOL, rlytest-style probes: (address, form, effective, external)
CLASSIC_TESTERS = [
    ('"nobody@mail-abuse.org"', "quoted-route", "nobody@mail-abuse.org", True),  # MAPS "Quote test"
    ("<nobody@mail-abuse.org>", "plain", "nobody@mail-abuse.org", True),  # MAPS tests 1-6
    ("spamtest@ns2.example.com", "plain", "spamtest@ns2.example.com", True),
    ("spamtest@localhost", "plain", "spamtest@localhost", False),  # MAPS test 3 sender
    ("spamtest", "plain", "spamtest", False),  # MAPS test 4 sender: unqualified
    ("spamtest@acme.example", "plain", "spamtest@acme.example", False),  # MAPS test 6 sender
    ("CloseYourOpenRelay@aol.com", "plain", "CloseYourOpenRelay@aol.com", True),  # AOL
]


@pytest.mark.parametrize(("address", "form", "effective", "external"), METASPLOIT + CLASSIC_TESTERS)
def test_metasploit_and_classic_testers(address: str, form: str, effective: str | None,
                                        external: bool) -> None:
    check(address, ACME, form, effective, external)


# Exchange 5.5 IMCEA relay bugs. The site hosts localdomain1.com (the KB's names).
EXCH = Locality(local_domains=("localdomain1.com", "local.example"),
                server_names=("exch01.localdomain1.com",),
                server_ips=("192.0.2.30",))

# KB Q264330: (address) -> imcea-quoted, user@domain2.com, external
Q264330 = [
    '"IMCEA user@domain2.com" @localdomain1.com',  # exactly as the KB prints it
    '"IMCEA user@domain2.com"@localdomain1.com',
    '<"IMCEA user@domain2.com" @localdomain1.com>',
    '<"IMCEA user@domain2.com"@localdomain1.com>',
    '< "IMCEA user@domain2.com" @ localdomain1.com >',
    '"imcea user@domain2.com"@localdomain1.com',
    '"ImCeA user@domain2.com"@LOCALDOMAIN1.COM',
    '"IMCEA   user@domain2.com"@localdomain1.com',
    '"IMCEA user@domain2.com"@[192.0.2.30]',
    '"IMCEA user@domain2.com"@exch01.localdomain1.com',
    "IMCEA user@domain2.com@localdomain1.com",  # Postfix < 3.5 log: the quotes are lost
    '"IMCEA\\"user@domain2.com"@localdomain1.com',  # an escaped quote instead of the space
]


@pytest.mark.parametrize("address", Q264330)
def test_q264330(address: str) -> None:
    result = check(address, EXCH, "imcea-quoted", "user@domain2.com", True)
    assert (result.effective_domain, result.imcea_type, result.imcea_decoded) == ("domain2.com", None,
                                                                                 "user@domain2.com")
    assert result.explanation.startswith("KB Q264330 form")
    assert "user@domain2.com" in result.explanation


# MS99-027 / KB Q237927: (address, effective recipient)
MS99_027 = [
    ("IMCEASMTP-user+40destinationdomain+2Ecom@local.example", "user@destinationdomain.com"),
    ("IMCEASMTP-user+40destinationdomain+2ecom@local.example", "user@destinationdomain.com"),
    ("<IMCEASMTP-user+40destinationdomain+2Ecom@localdomain1.com>", "user@destinationdomain.com"),
    ("imceasmtp-user+40destinationdomain+2Ecom@local.example", "user@destinationdomain.com"),
    ('"IMCEASMTP-user+40victim+2Ecom"@local.example', "user@victim.com"),
    (imcea_encode("SMTP", RELAYTEST) + "@local.example", RELAYTEST),
    # Decoded address carries a percent hack at the local domain: both tricks apply.
    ("IMCEASMTP-user+25victim+2Ecom+40local+2Eexample@local.example", "user@victim.com"),
]


@pytest.mark.parametrize(("address", "effective"), MS99_027)
def test_ms99_027(address: str, effective: str) -> None:
    result = check(address, EXCH, "imcea-encapsulated", effective, True)
    assert result.imcea_type == "SMTP"
    assert result.explanation.startswith("MS99-027 (KB Q237927) form")


def test_combined_tricks_are_named_in_the_explanation() -> None:
    result = classify_address("IMCEASMTP-user+25victim+2Ecom+40local+2Eexample@local.example", EXCH)
    assert result.imcea_decoded == "user%victim.com@local.example"
    assert "combined with the percent hack" in result.explanation


def test_lower_case_imcea_prefix_is_noted() -> None:
    result = classify_address('"imcea user@domain2.com"@localdomain1.com', EXCH)
    assert "KB Q271575" in result.explanation


# Benign IMCEA, verbatim from the research note §3.2: (address, local domains, type, decoded)
BENIGN_IMCEA = [
    ("IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=ALIAS@domain.com", "domain.com", "EX",
     "/O=ORG/OU=SITE/CN=RECIPIENTS/CN=ALIAS"),
    ("IMCEAEX-_O=MICROSOFT_OU=ALPINE_cn=RECIPIENTS_cn=ALPINE1@alpine.microsoft.com", "alpine.microsoft.com",
     "EX", "/O=MICROSOFT/OU=ALPINE/cn=RECIPIENTS/cn=ALPINE1"),
    ("IMCEAEX-_O=Organization_OU=Site_CN=ContainerName_CN=someone@microsoft.com", "microsoft.com", "EX",
     "/O=Organization/OU=Site/CN=ContainerName/CN=someone"),
    ("IMCEAEX-_O=CONTOSO_OU=First+20Administrative+20Group_cn=Recipients_cn=user@domain.com", "domain.com",
     "EX", "/O=CONTOSO/OU=First Administrative Group/cn=Recipients/cn=user"),
    ("IMCEAX400-c=US+3Ba=+20+3Bp=Microsoft+3Bo=Site+3Bdda+3ASMTP=user+3B@microsoft.com", "microsoft.com",
     "X400", "c=US;a= ;p=Microsoft;o=Site;dda:SMTP=user;"),
    ("IMCEAX400-c=US+3Ba=+20+3Bp=MS+3Bo=PARIS+3Bs=user+3B@host.microsoft.com", "microsoft.com", "X400",
     "c=US;a= ;p=MS;o=PARIS;s=user;"),
    # KB Q175707 writes it as the proxy address "SMTP:IMCEAMS-..."; the SMTP path is what follows "SMTP:".
    ("IMCEAMS-msnet_mspo_myname@company.com", "company.com", "MS", "msnet/mspo/myname"),
    ("IMCEAFAX-1234567890@MyDomain.com", "mydomain.com", "FAX", "1234567890"),
]


@pytest.mark.parametrize(("address", "local_domain", "imcea_type", "decoded"), BENIGN_IMCEA)
def test_benign_imcea_is_not_external(address: str, local_domain: str, imcea_type: str, decoded: str) -> None:
    result = check(address, Locality(local_domains=(local_domain,)), "imcea-encapsulated", address, False)
    assert (result.imcea_type, result.imcea_decoded) == (imcea_type, decoded)
    assert "not a relay" in result.explanation
    assert result.to_json()["effective_recipient"] is None


def test_benign_imcea_at_an_external_domain_is_external() -> None:
    address = "IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=ALIAS@partner.example"
    result = check(address, ACME, "imcea-encapsulated", address, True)
    assert result.imcea_type == "EX"


def test_encapsulated_smtp_at_a_remote_domain_is_not_decoded() -> None:
    address = "IMCEASMTP-swadmin+40corporate+2Ecom@*"  # KB Q189492
    result = check(address, EXCH, "imcea-encapsulated", address, True)
    assert result.imcea_decoded == "swadmin@corporate.com"
    assert "not local" in result.explanation


# Case, white space, quoting, literals, null path: (address, form, effective, external)
ODDITIES = [
    ("RELAYTEST@NMAP.SCANME.ORG", "plain", "RELAYTEST@NMAP.SCANME.ORG", True),
    ("User@ACME.Example", "plain", "User@ACME.Example", False),
    ("user@sales.acme.example", "plain", "user@sales.acme.example", False),  # subdomain
    ("user@acme.example.", "plain", "user@acme.example.", False),  # trailing dot
    ("  <  user@acme.example  >  ", "plain", "user@acme.example", False),
    ("<\tRelayTest%Nmap.Scanme.Org@MAIL.ACME.EXAMPLE >", "percent-hack", "RelayTest@Nmap.Scanme.Org", True),
    ('"john smith"@acme.example', "plain", '"john smith"@acme.example', False),
    ('"john \\"jj\\" smith"@acme.example', "plain", '"john \\"jj\\" smith"@acme.example', False),
    ('"john"@acme.example', "plain", "john@acme.example", False),
    ('"evil\\"@victim.example"@acme.example', "quoted-route", '"evil\\""@victim.example', True),
    ("evil\\@victim.example@acme.example", "quoted-route", "evil@victim.example", True),  # escaped @
    ("user@[IPv6:2001:db8::25]", "ip-literal", "user@[IPv6:2001:db8::25]", True),
    ("user@[IPv6:::1]", "ip-literal", "user@[IPv6:::1]", False),  # loopback
    ("user@[127.0.0.1]", "ip-literal", "user@[127.0.0.1]", False),
    ("user@[198.51.100.7]", "ip-literal", "user@[198.51.100.7]", True),
    ("relaytest%nmap.scanme.org@[IPv6:::1]", "percent-hack", RELAYTEST, True),
    ("user@198.51.100.7", "ip-literal", "user@198.51.100.7", True),  # numeric domain without brackets
    ("<>", "plain", None, False),
    ("< >", "plain", None, False),
    ("", "plain", None, False),
    ("user%victim.example", "percent-hack", "user@victim.example", True),  # unqualified percent hack
    ("a%b%victim.example@acme.example", "percent-hack", "a%b@victim.example", True),  # rightmost %
    ("victim.example!a!b@acme.example", "bang-path", "a!b@victim.example", True),  # first ! (Postfix)
    ("acme.example!user", "bang-path", "user@acme.example", False),
    ("user%victim.example@remote.example", "percent-hack", "user%victim.example@remote.example", True),
    ("user@victim.example@remote.example", "double-at", '"user@victim.example"@remote.example', True),
    ("@evil.example:user@acme.example", "source-route", "user@acme.example", False),
    ("@acme.example,@evil.example:user@victim.example", "source-route", "user@victim.example", True),
]


@pytest.mark.parametrize(("address", "form", "effective", "external"), ODDITIES)
def test_oddities(address: str, form: str, effective: str | None, external: bool) -> None:
    check(address, ACME, form, effective, external)


def test_first_route_hop_outside_the_site_is_noted() -> None:
    result = classify_address("@evil.example:user@acme.example", ACME)
    assert "first route hop evil.example is outside the site" in result.explanation


# Combinations, one for each neighbouring pair in FORM_PRECEDENCE (the first form wins):
# (address, form, the form it beats, effective recipient)
ENCAPSULATED_RELAYTEST = imcea_encode("SMTP", RELAYTEST)
PRECEDENCE = [
    (f'"IMCEA {ENCAPSULATED_RELAYTEST}@acme.example"@acme.example', "imcea-quoted", "imcea-encapsulated",
     RELAYTEST),
    (f'"{ENCAPSULATED_RELAYTEST}@acme.example"@acme.example', "imcea-encapsulated", "quoted-route",
     RELAYTEST),
    ('@acme.example:"relaytest@nmap.scanme.org"@acme.example', "quoted-route", "source-route", RELAYTEST),
    ("@acme.example:relaytest@nmap.scanme.org@acme.example", "source-route", "double-at", RELAYTEST),
    ("relaytest%nmap.scanme.org@acme.example@acme.example", "double-at", "percent-hack", RELAYTEST),
    ("x!relaytest%nmap.scanme.org@acme.example", "percent-hack", "bang-path", "relaytest%nmap.scanme.org@x"),
    ("198.51.100.7!relaytest@acme.example", "bang-path", "ip-literal", "relaytest@198.51.100.7"),
    ('"IMCEA relaytest%nmap.scanme.org"@acme.example', "imcea-quoted", "percent-hack", RELAYTEST),
    (f"@{SRV}:{ENCAPSULATED_RELAYTEST}@acme.example", "imcea-encapsulated", "source-route", RELAYTEST),
]


def test_precedence_table_covers_every_neighbouring_pair() -> None:
    pairs = {(form, beaten) for _, form, beaten, _ in PRECEDENCE}
    assert set(itertools.pairwise(FORM_PRECEDENCE)) <= pairs


@pytest.mark.parametrize(("address", "form", "beaten", "effective"), PRECEDENCE)
def test_precedence_of_combined_tricks(address: str, form: str, beaten: str, effective: str) -> None:
    result = check(address, ACME, form, effective, True)
    assert "combined with" in result.explanation
    assert _TRICK_WORDS[beaten] in result.explanation


def test_forms_and_precedence_are_complete() -> None:
    assert list(FORMS) == ["plain", "imcea-quoted", "imcea-encapsulated", "quoted-route", "percent-hack",
                           "double-at", "source-route", "bang-path", "ip-literal", "unparseable"]
    assert set(FORM_PRECEDENCE) == set(FORMS) - {"plain", "unparseable"}
    assert all(meaning.endswith(".") for meaning in FORMS.values())


# Text that does not parse: form unparseable, raw text kept.
UNPARSEABLE = [
    "<user@acme.example",
    "john smith@acme.example",
    "user@",
    "a\x00b@acme.example",
    "<user@acme.example> SIZE=100",
    "x" * (MAX_PATH_CHARS + 1) + "@acme.example",
]


@pytest.mark.parametrize("address", UNPARSEABLE)
def test_unparseable(address: str) -> None:
    result = check(address, ACME, "unparseable", None, False)
    assert result.effective_domain is None
    assert result.explanation.startswith("Unparseable")


def test_to_json() -> None:
    assert classify_address(f"<relaytest%nmap.scanme.org@[{IP}]>", ACME).to_json() == {
        "address": f"<relaytest%nmap.scanme.org@[{IP}]>",
        "form": "percent-hack",
        "effective_recipient": RELAYTEST,
        "effective_domain": "nmap.scanme.org",
        "external": True,
        "imcea_type": None,
        "imcea_decoded": None,
        "explanation": f"Percent hack; stripped the local domain [{IP}]; turned the percent hack "
                       "relaytest%nmap.scanme.org into relaytest@nmap.scanme.org; mail would go to "
                       "relaytest@nmap.scanme.org, outside the site.",
    }
    # Same as the address without brackets: null in JSON (the dataclass keeps it).
    plain = classify_address(f"< {RELAYTEST} >", ACME)
    assert plain.effective_recipient == RELAYTEST
    assert plain.to_json()["effective_recipient"] is None


def test_classify_addresses_one_row_per_distinct_address() -> None:
    log = pl.DataFrame({"rcpt": [RELAYTEST, None, f"relaytest%nmap.scanme.org@{SRV}", RELAYTEST, "<>",
                                 "user@acme.example", "<bad"]})
    table = classify_addresses(log["rcpt"], ACME)
    assert table.columns == ["address", "form", "effective_recipient", "effective_domain", "external",
                             "imcea_type", "imcea_decoded", "explanation"]
    assert table.select("address", "form", "effective_domain", "external").rows() == [
        (RELAYTEST, "plain", "nmap.scanme.org", True),
        (f"relaytest%nmap.scanme.org@{SRV}", "percent-hack", "nmap.scanme.org", True),
        ("<>", "plain", None, False),
        ("user@acme.example", "plain", "acme.example", False),
        ("<bad", "unparseable", None, False),
    ]
    joined = log.join(table, left_on="rcpt", right_on="address", how="left")
    assert joined["external"].to_list() == [True, None, True, True, False, False, False]


def test_classify_addresses_from_an_iterable_and_empty() -> None:
    table = classify_addresses(iter([RELAYTEST, RELAYTEST, None]), ACME)
    assert table.height == 1
    empty = classify_addresses([], ACME)
    assert empty.height == 0
    assert empty.schema["external"] == pl.Boolean


# Fast path == grammar path ----------------------------------------------------------------------

ALL_TEST_ADDRESSES = sorted(
    {row[2] for row in NMAP} | {row[1] for row in NMAP} | {f"<{row[2]}>" for row in NMAP}
    | {row[0] for row in NMAP_SENDERS + METASPLOIT + CLASSIC_TESTERS + ODDITIES + PRECEDENCE + MS99_027}
    | {row[0] for row in BENIGN_IMCEA} | set(Q264330) | set(UNPARSEABLE)
)
LOCALITIES = [ACME, EXCH, Locality(local_domains=("domain.com", "microsoft.com", "company.com"))]


def assert_fast_path_agrees(address: str) -> bool:
    """The fast split (when it applies) equals the grammar split, and so do the classifications."""
    text = address.strip(" \t\r\n")
    fast = _split_fast(text) if len(text) <= MAX_PATH_CHARS else None  # longer text is never split
    if fast is not None:
        assert fast == _split_with_grammar(text)
    for locality in LOCALITIES:
        assert classify_address(address, locality) == classify_address(address, locality, fast_path=False)
    return fast is not None


def test_fast_path_agrees_on_every_test_address() -> None:
    hits = [assert_fast_path_agrees(address) for address in ALL_TEST_ADDRESSES]
    assert sum(hits) >= 20


LOCAL_CHARS = string.ascii_letters + string.digits + ".-_+=#&'*/%!\"\\ @{}|~?^`$"
DOMAIN_LABEL = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,8}", fullmatch=True)
DOMAIN = st.one_of(
    st.lists(DOMAIN_LABEL, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["acme.example", SRV, f"[{IP}]", "[IPv6:::1]", "localdomain1.com", "1.2.3.4",
                     "example.com."]),
)
LOCAL = st.one_of(
    st.from_regex(r"[A-Za-z0-9._+=#&'*/{}|~?^`$-]{1,16}", fullmatch=True),
    st.text(alphabet=LOCAL_CHARS, min_size=1, max_size=16),
    st.text(alphabet=LOCAL_CHARS, max_size=12).map(
        lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
    st.builds(imcea_encode, st.sampled_from(["SMTP", "EX", "smtp", "FAX"]), st.text(max_size=12)),
)
ADDRESS = st.one_of(
    st.builds(lambda local, domains, bracket: ("<{}>" if bracket else "{}").format(
        local + "".join("@" + d for d in domains)), LOCAL, st.lists(DOMAIN, max_size=3), st.booleans()),
    st.text(alphabet=LOCAL_CHARS + "<>[]:,", max_size=40),
)


@settings(max_examples=3000, deadline=None)
@given(ADDRESS)
def test_fast_path_agrees_with_grammar_on_generated_addresses(address: str) -> None:
    assert_fast_path_agrees(address)


def test_fast_path_covers_most_plain_addresses() -> None:
    rng = random.Random(3264330)
    addresses = [
        "".join(rng.choices(string.ascii_lowercase + ".-_+", k=rng.randint(1, 12))) + "@"
        + ".".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 8))) for _ in range(2))
        for _ in range(2000)
    ]
    hits = [assert_fast_path_agrees(address) for address in addresses]
    assert sum(hits) == len(addresses)


# Never raises -------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(alphabet=LOCAL_CHARS + "<>[]:,\x00\n", max_size=80),
                 st.text(min_size=MAX_PATH_CHARS - 10, max_size=MAX_PATH_CHARS + 10),
                 st.binary(max_size=100).map(lambda b: b.decode("latin-1"))))
def test_classifier_never_raises(text: str) -> None:
    result = classify_address(text, ACME)
    assert result.form in FORMS
    assert result.address == text
    if result.effective_recipient is None:
        assert result.external is False


def test_locality_with_lists_still_works() -> None:
    loose = Locality(local_domains=["acme.example"], server_names=[SRV], server_ips=[IP])  # type: ignore[arg-type]
    assert classify_address(f"relaytest%nmap.scanme.org@[{IP}]", loose).effective_recipient == RELAYTEST


def test_column_classifier_equals_the_per_address_path_on_a_mixed_population():
    """``classify_addresses`` resolves obviously plain addresses once per domain (whole-column path);
    every field must equal ``classify_address`` for each address, tricky or not."""
    import random
    import string

    from logforensics.classify import classify_addresses
    from logforensics.site import Locality

    loc = Locality(("acme-widgets.com",), ("mx1.acme-widgets.com",), ("192.0.2.25",))
    rng = random.Random(7)
    addrs = ["Foo@Example.COM.", "<bob@acme-widgets.com>", "x@[192.0.2.25]", "x@192.0.2.25", "<a@b.c",
             "a@b.c>", " a@b ", "a..b@x.y", "imceaex-x@acme-widgets.com", "IMCEASMTP-v+40x.example@acme-widgets.com",
             "u@localhost", "a%b@acme-widgets.com", "", "x@y@z", '"q@r"@acme-widgets.com', "lfLOCALPARTlf@x.example"]
    chars = string.ascii_letters + string.digits + "#$&'*+/=?^_`{|}~.-%!@<> \"[]"
    addrs += ["".join(rng.choice(chars) for _ in range(rng.randint(1, 20))) for _ in range(2000)]
    domains = ["acme-widgets.com", "MX1.acme-widgets.com", "Example.org", "192.0.2.25", "10.0.0.1", "x",
               "a-b.c.", "localhost", "[192.0.2.25]", "sub.acme-widgets.com."]
    addrs += ["".join(rng.choice(string.ascii_letters + ".-_+") for _ in range(rng.randint(1, 8)))
              + "@" + rng.choice(domains) for _ in range(2000)]
    frame = classify_addresses(addrs, loc)
    assert frame.height == len(set(addrs))
    for row in frame.iter_rows(named=True):
        ref = classify_address(row["address"], loc)
        assert row == {k: getattr(ref, k) for k in row}, row["address"]


def test_template_path_equals_the_per_address_path_on_trick_forms():
    """Trick addresses are classified once per shape (user names replaced by marks); every field must
    equal the per-address classification, including bang paths that move a token into a domain."""
    import random
    import string

    from logforensics.classify import classify_addresses
    from logforensics.site import Locality

    loc = Locality(("acme-widgets.com",), ("mx1.acme-widgets.com",), ("192.0.2.25",))
    rng = random.Random(11)
    doms = ["hotmail.com", "acme-widgets.com", "ACME-widgets.com", "mx1.acme-widgets.com", "[192.0.2.25]",
            "192.0.2.25", "x", "localhost", "example.org.", "10.1.1.1"]

    def user() -> str:
        return "".join(rng.choice(string.ascii_letters + string.digits + "_") for _ in range(rng.randint(1, 12)))

    def dom() -> str:
        return rng.choice(doms)

    forms = [lambda: f'"IMCEA {user()}@{dom()}" @{dom()}', lambda: f'"IMCEA {user()}@{dom()}"@{dom()}',
             lambda: f"{user()}%{dom()}@{dom()}", lambda: f"{user()}@{dom()}@{dom()}",
             lambda: f"{dom()}!{user()}@{dom()}", lambda: f"<@{dom()},@{dom()}:{user()}@{dom()}>",
             lambda: f'"{user()}@{dom()}"@{dom()}', lambda: f"IMCEASMTP-{user()}+40{dom()}@{dom()}",
             lambda: f"{user()}!{user()}%{dom()}@{dom()}", lambda: f"{user()}%{user()}!x@{dom()}",
             lambda: f'"imcea {user()}@{dom()}" @{dom()}', lambda: f"<{user()}@{dom()}"]
    chars = string.ascii_letters + string.digits + "#$&'*+/=?^_`{|}~.-%!@<> \"[]:,\\"
    addrs = [rng.choice(forms)() for _ in range(4000)]
    addrs += ["".join(rng.choice(chars) for _ in range(rng.randint(1, 30))) for _ in range(4000)]
    frame = classify_addresses(addrs, loc)
    for row in frame.iter_rows(named=True):
        ref = classify_address(row["address"], loc)
        assert row == {k: getattr(ref, k) for k in row}, row["address"]
