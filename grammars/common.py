"""Small building blocks shared by the line grammars."""

from __future__ import annotations

import pyparsing as pp


def regex_leaf(pattern: str, name: str) -> pp.Regex:
    """A ``pp.Regex`` that sees a line exactly as logged: no whitespace skipping, no tab expansion.

    The pattern is also run by Polars over whole columns, so it must stay in the common subset of
    Python ``re`` and Rust ``regex`` (see the package docstring).
    """
    element = pp.Regex(pattern).set_name(name)
    element.leave_whitespace()
    element.parse_with_tabs()
    return element


def anchored(pattern: str) -> str:
    """The pattern anchored at the start of the text, for whole-column use (``str.extract_groups``).

    Grammar patterns carry no ``^`` themselves, because inside a composite pyparsing element they
    are matched mid-line.
    """
    return "^(?:" + pattern + ")"
