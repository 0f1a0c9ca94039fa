"""pyparsing grammars for the log formats logforensics reads.

Pure pyparsing: nothing here imports from the rest of the project, so the grammars can be used,
tested and drawn (railroad diagrams) on their own.

Speed rule (see README "Design"): each fixed-format line prefix is ONE ``pp.Regex`` with named
groups. Its pattern is written in the common subset of Python ``re`` and Rust ``regex`` syntax
(named groups ``(?P<name>...)``, ASCII classes such as ``[0-9]``, no look-around, no
back-references), so that readers can run the very same pattern over a whole Polars column.
The grammar stays the authority: tests compare the column path with ``parse_string`` line by line.
"""
