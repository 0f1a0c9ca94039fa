"""Fuzzing (issue 8): arbitrary text never breaks a grammar, a sniffer, a reader or the source layer.

Hypothesis properties, bounded so that the whole file runs in well under a minute in CI. For a
longer local run raise the budget: ``LOGFORENSICS_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py``.

Inputs mix arbitrary text (control characters, surrogate-free Unicode, huge repeats) with real
sample lines and mutated copies of them, so that the fuzzer gets past the first token of every
grammar.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import polars as pl
import pyparsing as pp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grammars
from logforensics.ingest import read_one
from logforensics.readers import READERS, SNIFF_LINES, ReadContext, sniff_format
from logforensics.readers.syslog import YearHint
from logforensics.schema import EVENT_SCHEMA
from logforensics.site import SiteProfile
from logforensics.sources import Source, decode_text, read_source, sniff_compression
from tests.conftest import SAMPLES

EXAMPLES = int(os.environ.get("LOGFORENSICS_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------------------------------------
# Material: real lines from every sample log, to mutate


def _sample_lines() -> list[str]:
    out: list[str] = []
    for p in sorted(SAMPLES.rglob("*")):
        if p.is_file() and p.suffix.lower() not in (".md", ".toml"):
            text = p.read_bytes().decode("utf-8", "replace")
            out += [ln.rstrip("\r") for ln in text.split("\n")[:60] if ln.strip()]
    return out


SAMPLE_LINES = _sample_lines()
GRAMMAR_MODULES = [importlib.import_module(f"grammars.{m.name}") for m in pkgutil.iter_modules(grammars.__path__)]

weird_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
control_text = st.text(alphabet=st.sampled_from(list("\x00\x01\x07\x08\t\x0b\x0c\r\x1b\x7f\x85\u2028 <>@%!\":;,[]()\\")
                                                + list("aZ09.-_=+|")), max_size=200)


@st.composite
def mutated(draw) -> str:
    """A real log line with a random slice replaced by arbitrary text."""
    line = draw(st.sampled_from(SAMPLE_LINES))
    i = draw(st.integers(0, len(line)))
    j = draw(st.integers(i, len(line)))
    return line[:i] + draw(st.one_of(weird_text, control_text)) + line[j:]


@st.composite
def huge(draw) -> str:
    """A long repeat of a short piece (kept moderate: the line cap itself is tested elsewhere)."""
    piece = draw(st.one_of(st.sampled_from(["<", "\"", "@", "%", "\\", "A", " ", "\t", "[1/2] "]), control_text))
    return piece * draw(st.integers(100, 20_000 // max(len(piece), 1)))


#: One physical line: anything but LF (readers split on LF; a CR or U+2028 stays inside a line).
any_line = st.one_of(weird_text, control_text, mutated(), st.sampled_from(SAMPLE_LINES), huge()).map(
    lambda s: s.replace("\n", " "))
line_lists = st.lists(any_line, max_size=40)


# ---------------------------------------------------------------------------------------------
# Grammars: every module-level element and every parse_* function


def _elements() -> list[tuple[str, pp.ParserElement]]:
    out = []
    for mod in GRAMMAR_MODULES:
        for name, value in vars(mod).items():
            if isinstance(value, pp.ParserElement):
                out.append((f"{mod.__name__}.{name}", value))
            elif isinstance(value, dict):
                out += [(f"{mod.__name__}.{name}[{k}]", v) for k, v in value.items()
                        if isinstance(v, pp.ParserElement)]
    return out


ELEMENTS = _elements()
PARSE_FUNCTIONS = [(f"{mod.__name__}.{name}", fn) for mod in GRAMMAR_MODULES for name, fn in vars(mod).items()
                   if callable(fn) and getattr(fn, "__module__", None) == mod.__name__
                   and (name.startswith("parse_") or name in ("imcea_decode", "imcea_unescape", "imcea_split",
                                                               "split_fields", "group_name"))]


def test_postfix_parse_message_on_text_with_a_line_feed():
    """Found by fuzzing: not reachable from a log (lines never hold LF), so only recorded here."""
    from grammars.postfix import parse_message

    with pytest.raises(AssertionError):
        parse_message("abc\ndef")


def test_every_grammar_is_fuzzed():
    modules = {name.split(".")[1] for name, _ in ELEMENTS}
    assert modules >= {"address", "exchange_protocol", "exchange_tracking", "exim", "ims55_protocol",
                       "ims55_tracking", "postfix", "sendmail", "smtp", "syslog", "w3c_smtp"}
    assert len(PARSE_FUNCTIONS) >= 8


@pytest.mark.parametrize(("name", "element"), ELEMENTS, ids=[n for n, _ in ELEMENTS])
@FUZZ
@given(text=st.one_of(any_line, weird_text))  # an element also sees text with line feeds
def test_grammar_elements_raise_only_parse_errors(name, element, text):
    for parse_all in (False, True):
        try:
            element.parse_string(text, parse_all=parse_all)
        except pp.ParseBaseException:
            pass


@pytest.mark.parametrize(("name", "fn"), PARSE_FUNCTIONS, ids=[n for n, _ in PARSE_FUNCTIONS])
@FUZZ
@given(text=any_line)
def test_grammar_functions_raise_only_parse_errors(name, fn, text):
    try:
        fn(text)
    except pp.ParseBaseException:
        pass


# ---------------------------------------------------------------------------------------------
# Sniffers and readers


@FUZZ
@given(head=line_lists)
def test_sniffers_never_raise(head):
    for reader in READERS.values():
        score = reader().sniff(head)
        assert 0.0 <= score <= 1.0
    fmt = sniff_format(head)
    assert fmt is None or fmt in READERS


SITES = [SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",)), SiteProfile()]


@pytest.mark.parametrize("fmt", list(READERS))
@FUZZ
@given(lines=st.lists(any_line, min_size=1, max_size=40), site=st.sampled_from(SITES),
       year=st.sampled_from([None, 2000]))
def test_readers_never_raise_and_account_for_every_line(fmt, lines, site, year):
    """Any non-empty file (``read_one`` never calls a reader with no lines; see the next test)."""
    series = pl.Series("raw", lines, dtype=pl.String)
    hint = YearHint(start_year=year) if year else None
    result = READERS[fmt]().read(series, ReadContext("fuzz.log", site, "srv", hint))
    assert result.lines == len(lines)
    assert 0 <= result.skipped <= len(lines)
    assert list(result.events.schema.items()) == list(EVENT_SCHEMA.items())
    events = result.events
    if events.height:
        assert events["line"].min() >= 1 and events["line"].max() <= len(lines)


HEADER_ONLY = [
    [],
    [""],
    ["#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0", "#Date: 2006-02-14 00:00:00",
     "#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem"],
    ["# Message Tracking Log File", "# Exchange System Attendant Version 6.5.7638.1",
     "# Date\tTime\tclient-ip\tClient-hostname"],
    ["\ufeff#Software: Microsoft Exchange Server", "#Version: 14.0.0.0", "#Log-type: SMTP Receive Protocol Log",
     "#Date: 2010-06-15T00:00:00.000Z",
     "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context"],
]


@pytest.mark.parametrize("fmt", list(READERS))
def test_readers_on_no_data_lines_give_no_events(fmt):
    """A header-only IIS or Exchange log (a day without traffic) must give no event (found by fuzzing:
    it once gave one all-null row)."""
    for lines in HEADER_ONLY:
        result = READERS[fmt]().read(pl.Series("raw", lines, dtype=pl.String), ReadContext("f", SITES[0], "srv"))
        assert result.lines == len(lines) and result.events.height == 0, lines


# ---------------------------------------------------------------------------------------------
# The source layer: arbitrary bytes, with or without compression magic, through read_one

MAGICS = [b"", b"\x1f\x8b", b"\x1f\x8b\x08\x00", b"BZh9", b"\xfd7zXZ\x00", b"PK\x03\x04", b"PK\x05\x06",
          b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf"]


@st.composite
def evidence_bytes(draw) -> bytes:
    body = draw(st.one_of(
        st.binary(max_size=2000),
        line_lists.map(lambda ls: "\r\n".join(ls).encode("utf-8", "surrogatepass")),
        line_lists.map(lambda ls: "\n".join(ls).encode("utf-16-le", "surrogatepass")),
    ))
    return draw(st.sampled_from(MAGICS)) + body


@FUZZ
@given(data=evidence_bytes())
def test_read_source_and_read_one_never_raise(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "input.log"
    path.write_bytes(data)
    sources = read_source(path)
    assert sources and all(s.sha256 for s in sources)
    if sniff_compression(data[:8]) != "zip":
        assert len(sources) == 1
    for source in sources:
        events, report, lines = read_one(source, SITES[0])
        assert report.status in ("ok", "unrecognised", "empty", "unreadable")
        assert report.lines == lines.len()
        assert lines.len() <= max(len(source.data), 1)
        if report.status != "ok":
            assert report.warnings
        assert events.height == report.events


@FUZZ
@given(lines=line_lists)
def test_read_one_sniffs_and_reads_arbitrary_lines(lines):
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    source = Source("fuzz/L0000000.LOG", len(data), "0" * 64, None, None, data)
    events, report, split = read_one(source, SITES[0])
    text = decode_text(data)[0]  # a leading BOM is not text
    end = "\n" if "\n" in text or "\r" not in text else "\r"  # CR alone ends lines in a file with no LF
    assert report.lines == split.len() == text.count(end) + (0 if text.endswith(end) or not text else 1)
    assert 0 <= report.skipped_lines <= report.lines
    assert events.height == report.events
    assert split.head(SNIFF_LINES).len() <= SNIFF_LINES


def test_the_fuzz_budget_is_bounded():
    assert EXAMPLES <= 10_000
    assert Path(__file__).stat().st_size < 50_000
