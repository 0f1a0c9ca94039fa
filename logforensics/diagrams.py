"""Railroad diagrams of the grammars: living documentation, written to ``docs/diagrams/<name>.html``.

Needs the optional extra ``diagrams`` (``railroad-diagrams`` and ``jinja2``), which pyparsing's
``create_diagram`` imports. Regenerate with::

    python -c "from pathlib import Path; from logforensics.diagrams import write_diagrams; \\
write_diagrams(Path('docs/diagrams'))"
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyparsing as pp

from grammars import (
    address,
    exchange_protocol,
    exchange_tracking,
    exim,
    ims55_protocol,
    ims55_tracking,
    postfix,
    sendmail,
    syslog,
    w3c_smtp,
)

#: Every grammar that gets a diagram: name -> factory returning a fresh top element.
GRAMMARS: dict[str, Callable[[], pp.ParserElement]] = {
    "address": address.make_smtp_path,
    "ims55-protocol": lambda: ims55_protocol.line,
    "ims55-tracking": lambda: ims55_tracking.header + pp.ZeroOrMore(pp.LineEnd() + ims55_tracking.recipient_line),
    "syslog": lambda: syslog.syslog_line,
    "postfix": lambda: postfix.message,
    "sendmail": lambda: sendmail.message,
    "exim": lambda: exim.line,
    "w3c-smtp": lambda: w3c_smtp.line | w3c_smtp.ncsa_line,
    "exchange-tracking": lambda: (exchange_tracking.directive | exchange_tracking.comment
                                  | exchange_tracking.tab_line(exchange_tracking.DEFAULT_FIELDS_2003)),
    "exchange-smtp-protocol": lambda: exchange_protocol.line,
}


def write_diagrams(outdir: Path, names: list[str] | None = None) -> list[Path]:
    """Write one HTML railroad diagram per grammar.

    Args:
        outdir: The directory to write into (created when missing).
        names: Only these grammars (default: all of :data:`GRAMMARS`).

    Returns:
        The files written, in registry order.

    Raises:
        KeyError: A name is not in :data:`GRAMMARS`.
        ImportError: The optional ``diagrams`` extra is not installed.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names if names is not None else list(GRAMMARS):
        path = outdir / f"{name}.html"
        GRAMMARS[name]().create_diagram(path, vertical=3, show_results_names=True, show_groups=True)
        written.append(path)
    return written
