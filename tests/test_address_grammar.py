"""The SMTP path grammar on its own (grammars/address.py): inputs and expected results side by side."""

from __future__ import annotations

import ast
import unittest
import warnings
from pathlib import Path

import pyparsing as pp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyparsing.testing import pyparsing_test as ppt

from grammars import address
from grammars.address import (
    MAX_PATH_CHARS,
    imcea_decode,
    imcea_encode,
    imcea_split,
    imcea_unescape,
    make_smtp_path,
    parse_path,
    smtp_path,
)

# text -> the results names it must produce (as_dict); every form the module docstring promises.
PARSES = [
    ("user@example.com", {"local_part": "user", "domains": ["example.com"], "domain": "example.com"}),
    ("<user@example.com>", {"local_part": "user", "domains": ["example.com"], "domain": "example.com"}),
    ("<  user@example.com\t>", {"local_part": "user", "domains": ["example.com"], "domain": "example.com"}),
    ("  user@example.com  ", {"local_part": "user", "domains": ["example.com"], "domain": "example.com"}),
    ("USER@EXAMPLE.COM", {"local_part": "USER", "domains": ["EXAMPLE.COM"], "domain": "EXAMPLE.COM"}),
    ("spamtest", {"local_part": "spamtest"}),
    ("<>", {"null_path": "<>"}),
    ("< >", {"null_path": "< >"}),
    ('"john smith"@example.com',
     {"local_part": '"john smith"', "domains": ["example.com"], "domain": "example.com"}),
    ('"john \\"jj\\" smith"@example.com',
     {"local_part": '"john \\"jj\\" smith"', "domains": ["example.com"], "domain": "example.com"}),
    ('"a@b%c!d"@example.com',
     {"local_part": '"a@b%c!d"', "domains": ["example.com"], "domain": "example.com"}),
    ('"relaytest@nmap.scanme.org"', {"local_part": '"relaytest@nmap.scanme.org"'}),
    ('"user@remote" @local.example',
     {"local_part": '"user@remote"', "domains": ["local.example"], "domain": "local.example"}),
    ("@a,@b:user@d", {"route": ["a", "b"], "local_part": "user", "domains": ["d"], "domain": "d"}),
    ("<@a , @b : user@d>", {"route": ["a", "b"], "local_part": "user", "domains": ["d"], "domain": "d"}),
    ("@[192.0.2.25]:relaytest@nmap.scanme.org",
     {"route": ["[192.0.2.25]"], "local_part": "relaytest", "domains": ["nmap.scanme.org"],
      "domain": "nmap.scanme.org"}),
    ("a!b!user", {"local_part": "a!b!user"}),
    ("a!user@relay", {"local_part": "a!user", "domains": ["relay"], "domain": "relay"}),
    ("user%dom@relay", {"local_part": "user%dom", "domains": ["relay"], "domain": "relay"}),
    ("user%dom", {"local_part": "user%dom"}),
    ("user@host@relay", {"local_part": "user", "domains": ["host", "relay"], "domain": "relay"}),
    ("user@[192.0.2.1]", {"local_part": "user", "domains": ["[192.0.2.1]"], "domain": "[192.0.2.1]"}),
    ("user@[IPv6:2001:db8::1]",
     {"local_part": "user", "domains": ["[IPv6:2001:db8::1]"], "domain": "[IPv6:2001:db8::1]"}),
    ("user@[ipv6:::1]", {"local_part": "user", "domains": ["[ipv6:::1]"], "domain": "[ipv6:::1]"}),
    ("IMCEASMTP-user+40destinationdomain+2Ecom@local.example",
     {"imcea_prefix": "IMCEA", "imcea_type": "SMTP", "imcea_encoded": "user+40destinationdomain+2Ecom",
      "local_part": "IMCEASMTP-user+40destinationdomain+2Ecom", "domains": ["local.example"],
      "domain": "local.example"}),
    ("imceasmtp-user+40dom+2ecom@local.example",
     {"imcea_prefix": "imcea", "imcea_type": "smtp", "imcea_encoded": "user+40dom+2ecom",
      "local_part": "imceasmtp-user+40dom+2ecom", "domains": ["local.example"], "domain": "local.example"}),
    ("IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=ALIAS@domain.com",
     {"imcea_prefix": "IMCEA", "imcea_type": "EX", "imcea_encoded": "_O=ORG_OU=SITE_CN=RECIPIENTS_CN=ALIAS",
      "local_part": "IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=ALIAS", "domains": ["domain.com"],
      "domain": "domain.com"}),
    # KB Q264330, exactly as printed (space between the closing quote and @), and variants.
    ('"IMCEA user@domain2.com" @localdomain1.com',
     {"imcea_prefix": "IMCEA", "imcea_inner": "user@domain2.com", "local_part": '"IMCEA user@domain2.com"',
      "domains": ["localdomain1.com"], "domain": "localdomain1.com"}),
    ('<"imcea user@domain2.com"@localdomain1.com>',
     {"imcea_prefix": "imcea", "imcea_inner": "user@domain2.com", "local_part": '"imcea user@domain2.com"',
      "domains": ["localdomain1.com"], "domain": "localdomain1.com"}),
    # The same without quotes, as Postfix before 3.5 logged the internal form.
    ("IMCEA user@domain2.com@localdomain1.com",
     {"imcea_prefix": "IMCEA", "imcea_inner": "user", "local_part": "IMCEA user",
      "domains": ["domain2.com", "localdomain1.com"], "domain": "localdomain1.com"}),
    # Not valid IMCEA encoding ('#'): falls back to an ordinary local part instead of failing.
    ("IMCEASMTP-a#b@c.example",
     {"local_part": "IMCEASMTP-a#b", "domains": ["c.example"], "domain": "c.example"}),
    ("IMCEASMTP-swadmin+40corporate+2Ecom@*",
     {"imcea_prefix": "IMCEA", "imcea_type": "SMTP", "imcea_encoded": "swadmin+40corporate+2Ecom",
      "local_part": "IMCEASMTP-swadmin+40corporate+2Ecom", "domains": ["*"], "domain": "*"}),
]

# Text that is not a path.
FAILS = [
    "",
    "<user@example.com",
    "user@example.com>",
    "john smith@example.com",
    '"unterminated@example.com',
    "user@",
    "user@exa mple.com",
    "user@[999.1.2]",
    "<user@example.com> SIZE=1000",
    "@a,@b user@d",
    "user@host%relay",
    "a\x00b@example.com",
    "<<>>",
]


@pytest.mark.parametrize(("text", "expected"), PARSES)
def test_parses(text: str, expected: dict) -> None:
    assert parse_path(text).as_dict() == expected


@pytest.mark.parametrize("text", FAILS)
def test_does_not_parse(text: str) -> None:
    with pytest.raises(pp.ParseException):
        parse_path(text)


def test_refuses_text_longer_than_the_cap_without_parsing() -> None:
    text = "a" * (MAX_PATH_CHARS - len("@example.com")) + "@example.com"
    assert parse_path(text)["domain"] == "example.com"
    with pytest.raises(pp.ParseException, match="longer than"):
        parse_path("a" + text)


def test_run_tests_success_and_failure() -> None:
    ok, _ = smtp_path.run_tests(
        """
        # nmap smtp-open-relay RCPT forms (srvname mail.acme.example, ip 192.0.2.25)
        relaytest%nmap.scanme.org@[192.0.2.25]
        "relaytest@nmap.scanme.org"@[192.0.2.25]
        relaytest@nmap.scanme.org@mail.acme.example
        @mail.acme.example:relaytest@nmap.scanme.org
        nmap.scanme.org!relaytest@[192.0.2.25]
        """,
        print_results=False,
    )
    assert ok
    ok, _ = smtp_path.run_tests(["user@@example.com", "<a@b> <c@d>", '"a"b"@c'], failure_tests=True,
                                print_results=False)
    assert ok


class TestGrammarAsserts(ppt.TestParseResultsAsserts, unittest.TestCase):
    """pyparsing's own assertions on the grammar elements."""

    def test_route_and_mailbox(self) -> None:
        self.assertParseAndCheckList(smtp_path, "@a,@b:user@d", [["a", "b"], "user", "d"], verbose=False)
        self.assertParseAndCheckDict(smtp_path, "<user%dom@relay>",
                                     {"local_part": "user%dom", "domains": ["relay"], "domain": "relay"},
                                     verbose=False)

    def test_failure(self) -> None:
        with self.assertRaisesParseException():
            smtp_path.parse_string("<user@example.com", parse_all=True)


def test_grammar_builds_and_parses_without_pyparsing_warnings() -> None:
    with ppt.reset_pyparsing_context(), warnings.catch_warnings():
        warnings.simplefilter("error")
        pp.enable_all_warnings()
        grammar = make_smtp_path()
        for text, _ in PARSES:
            grammar.parse_string(text, parse_all=True)


def test_grammar_module_imports_only_pyparsing_and_stdlib() -> None:
    tree = ast.parse(Path(address.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported == {"__future__", "re", "pyparsing"}


# IMCEA helpers ------------------------------------------------------------------------------------

# (type, address) -> encapsulated local part ([MS-OXCMAIL] 2.1.3.1.8)
ENCODINGS = [
    ("SMTP", "user@destinationdomain.com", "IMCEASMTP-user+40destinationdomain+2Ecom"),
    ("smtp", "relaytest@nmap.scanme.org", "IMCEASMTP-relaytest+40nmap+2Escanme+2Eorg"),
    ("EX", "/O=ORG/OU=SITE/CN=RECIPIENTS/CN=ALIAS", "IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=ALIAS"),
    ("X400", "c=US;a= ;p=MS;o=PARIS;s=user;", "IMCEAX400-c=US+3Ba=+20+3Bp=MS+3Bo=PARIS+3Bs=user+3B"),
    ("SMTP", "first_last+tag@x.com", "IMCEASMTP-first+5Flast+2Btag+40x+2Ecom"),
    ("SMTP", "é", "IMCEASMTP-+C3+A9"),
]

# encoded text -> decoded text
DECODINGS = [
    ("user+40destinationdomain+2Ecom", "user@destinationdomain.com"),
    ("user+40destinationdomain+2ecom", "user@destinationdomain.com"),
    ("IMCEASMTP-user+40destinationdomain+2Ecom", "user@destinationdomain.com"),
    ("imceasmtp-user+40dom+2ecom", "user@dom.com"),
    ("_O=CONTOSO_OU=First+20Administrative+20Group_cn=Recipients_cn=user",
     "/O=CONTOSO/OU=First Administrative Group/cn=Recipients/cn=user"),
    ("msnet_mspo_myname", "msnet/mspo/myname"),
    ("a+5Fb", "a_b"),             # _ -> / first, then +5F -> _
    ("caf+E9", "café"),           # not UTF-8: read as Latin-1 (ANSI-era data)
    ("caf+C3+A9", "café"),        # valid UTF-8
    ("a+zz+4", "a+zz+4"),         # a + without two hex digits is kept
]


@pytest.mark.parametrize(("address_type", "text", "expected"), ENCODINGS)
def test_imcea_encode(address_type: str, text: str, expected: str) -> None:
    assert imcea_encode(address_type, text) == expected


@pytest.mark.parametrize(("encoded", "expected"), DECODINGS)
def test_imcea_decode(encoded: str, expected: str) -> None:
    assert imcea_decode(encoded) == expected


def test_imcea_encode_rejects_a_bad_type() -> None:
    with pytest.raises(ValueError, match="address type"):
        imcea_encode("SM-TP", "a@b")


def test_imcea_split() -> None:
    assert imcea_split("IMCEAfax-1234567890") == ("FAX", "1234567890")
    assert imcea_split("IMCEA user@domain2.com") is None
    assert imcea_split("IMCEASMTP-a#b") is None


# Properties ---------------------------------------------------------------------------------------

ADDRESSY = st.text(alphabet='abcXY09.-_+%!@"\\<>[]:, \t', max_size=60)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=300), ADDRESSY, st.text(min_size=MAX_PATH_CHARS - 5,
                                                          max_size=MAX_PATH_CHARS + 20)))
def test_grammar_only_ever_raises_parse_exception(text: str) -> None:
    try:
        parse_path(text)
    except pp.ParseException:
        pass


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True), st.text())
def test_imcea_round_trip_of_any_unicode_text(address_type: str, text: str) -> None:
    # Decision: text is encoded as UTF-8, so every str (any code point but lone surrogates) round-trips.
    encoded = imcea_encode(address_type, text)
    assert imcea_decode(encoded) == text
    assert imcea_split(encoded) == (address_type.upper(), encoded.split("-", 1)[1])
    assert imcea_unescape(encoded.split("-", 1)[1]) == text


@settings(max_examples=200, deadline=None)
@given(st.binary().map(lambda b: b.replace(b"\x00", b"").decode("latin-1")))
def test_encoded_address_parses_as_encapsulated(text: str) -> None:
    result = parse_path(imcea_encode("SMTP", text) + "@local.example")
    assert result["imcea_type"] == "SMTP"
    assert imcea_unescape(result["imcea_encoded"]) == text


def test_write_diagrams(tmp_path: Path) -> None:
    pytest.importorskip("railroad")
    pytest.importorskip("jinja2")
    from logforensics.diagrams import GRAMMARS, write_diagrams

    written = write_diagrams(tmp_path)
    assert written == [tmp_path / f"{name}.html" for name in GRAMMARS]
    html = written[0].read_text(encoding="utf-8")
    assert "imcea_quoted" in html and "source_route" in html


# The common_path shortcut must give exactly what the general alternatives give ------------------

GENERAL_ONLY = make_smtp_path(with_common_path=False)


def parse_or_none(grammar: pp.ParserElement, text: str) -> dict | None:
    try:
        return grammar.parse_string(text).as_dict()
    except pp.ParseException:
        return None


@pytest.mark.parametrize("text", [text for text, _ in PARSES] + FAILS)
def test_common_path_agrees_with_general_grammar_on_the_tables(text: str) -> None:
    assert parse_or_none(smtp_path, text) == parse_or_none(GENERAL_ONLY, text)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(ADDRESSY, st.builds("{}{}@{}{}".format, st.sampled_from(["", "<", "< "]), ADDRESSY,
                                     ADDRESSY, st.sampled_from(["", ">", " >"]))))
def test_common_path_agrees_with_general_grammar(text: str) -> None:
    assert parse_or_none(smtp_path, text) == parse_or_none(GENERAL_ONLY, text)


def test_tabs_are_kept() -> None:
    # pyparsing expands tabs by default, which would change a quoted local part.
    assert parse_path('"a\tb"@example.com')["local_part"] == '"a\tb"'
    assert parse_path("<\tuser@example.com\t>")["local_part"] == "user"


def test_combined_line_grammars_keep_tabs_as_data():
    """A combination of leaves expands TABs unless told not to (pyparsing's default), which would
    make the grammar read ``250<TAB> x`` as a reply while the column path (and the leaves) do not."""
    import pyparsing as pp

    from grammars import exchange_protocol, smtp

    with pytest.raises(pp.ParseException):
        smtp.smtp_payload.parse_string("250\t tab", parse_all=True)
    assert smtp.smtp_payload.parse_string("250 ok\tdone", parse_all=True)["reply_text"] == "ok\tdone"
    assert exchange_protocol.line.keepTabs and smtp.smtp_payload.keepTabs
