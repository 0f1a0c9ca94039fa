"""Evidence sources: find input files, open them read-only, hash, decompress and decode them.

Evidence is never modified, moved or locked: files are opened read-only, and the SHA-256 of the
raw bytes is recorded as they are read. Compression is recognised by magic bytes, not by suffix.
Undecodable bytes stay visible: a byte that is not valid UTF-8 is read as Windows-1252 (the
ANSI code page Exchange-era Windows servers wrote), or as ``\\xNN`` when Windows-1252 has no
character for it.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import hashlib
import io
import lzma
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from logforensics.errors import LogForensicsError

#: Magic bytes -> compression name.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
)

#: Decompression caps, so that a bomb cannot exhaust memory. Everything decompressed from one input
#: file (all layers and members together) may reach :data:`MAX_RATIO` times the file's size, and
#: at least :data:`RATIO_FLOOR_BYTES`, but never :data:`MAX_DECOMPRESSED_BYTES`; past that,
#: decompression stops with a warning and what was read is kept. Real logs compress 5-30:1.
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 64 << 20
MAX_DECOMPRESSED_BYTES = 1 << 30
#: Compression and archive layers opened inside one input file (``a.zip!b.zip!c.gz`` is three);
#: data nested deeper is reported with a warning, not opened.
MAX_ARCHIVE_DEPTH = 3
#: The longest line kept whole, in characters; a longer one is cut there with a warning
#: (:func:`logforensics.ingest.read_one`), and the lines after it are read as usual.
MAX_LINE_CHARS = 1 << 20
#: Decompression reads this much at a time.
CHUNK_BYTES = 1 << 20

_CP1252_UNDEFINED = {0x81, 0x8D, 0x8F, 0x90, 0x9D}


def _utf8_then_cp1252(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: an invalid UTF-8 byte becomes its Windows-1252 character, or ``\\xNN``."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    bad = err.object[err.start]
    if bad in _CP1252_UNDEFINED:
        return f"\\x{bad:02x}", err.start + 1
    return bytes([bad]).decode("cp1252"), err.start + 1


codecs.register_error("logforensics-cp1252", _utf8_then_cp1252)


@dataclass
class Source:
    """One input file (or archive member), decompressed, with its chain-of-custody facts."""

    path: str
    size: int
    sha256: str
    mtime: float | None
    compression: str | None
    data: bytes
    warnings: list[str] = field(default_factory=list)


def sniff_compression(head: bytes) -> str | None:
    """The compression named by the leading magic bytes, or ``None`` for plain data."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return None


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode log bytes to text without losing anything; returns (text, encoding used)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="logforensics-cp1252"), "utf-8-sig"
    if data.startswith(codecs.BOM_UTF16_LE):
        return data[2:].decode("utf-16-le", errors="backslashreplace"), "utf-16-le"
    if data.startswith(codecs.BOM_UTF16_BE):
        return data[2:].decode("utf-16-be", errors="backslashreplace"), "utf-16-be"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="logforensics-cp1252"), "utf-8+windows-1252"


def split_lines(text: str) -> pl.Series:
    """Physical lines (LF or CRLF; CR alone in a file with no LF at all, as classic Mac OS wrote
    them), in order; a final line without a newline is kept."""
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")
    parts = text.split("\n")
    if text.endswith("\n") or not text:
        parts.pop()
    series = pl.Series("raw", parts, dtype=pl.String)
    return series.str.strip_suffix("\r") if "\r" in text else series


class _Budget:
    """How many decompressed bytes one input file may produce (all its layers and members together)."""

    def __init__(self, compressed: int) -> None:
        self.compressed = compressed
        self.limit = min(MAX_DECOMPRESSED_BYTES, max(RATIO_FLOOR_BYTES, MAX_RATIO * compressed))
        self.used = 0

    def reason(self) -> str:
        if self.limit < MAX_DECOMPRESSED_BYTES:
            return (f"ratio above {MAX_RATIO}:1 to the {self.compressed} bytes of the file "
                    "(a decompression bomb?)")
        return f"above the cap of {MAX_DECOMPRESSED_BYTES} decompressed bytes per input file"


def _read_capped(stream: io.BufferedIOBase, name: str, what: str, budget: _Budget,
                 warnings: list[str]) -> bytes:
    """Read a decompressing stream in chunks up to the budget; keep what was read on any error."""
    out = io.BytesIO()
    try:
        while True:
            room = budget.limit - budget.used
            if room <= 0:
                if stream.read(1):
                    warnings.append(f"{name}: decompression stopped at {out.tell()} bytes: {budget.reason()}; "
                                    "kept what was read")
                break
            chunk = stream.read1(min(CHUNK_BYTES, room))  # read1: an error loses no earlier chunk
            if not chunk:
                break
            out.write(chunk)
            budget.used += len(chunk)
    except Exception as exc:  # EOFError, OSError, zlib.error, LZMAError, BadZipFile: hostile input
        warnings.append(f"{name}: {what} is truncated or corrupt ({type(exc).__name__}: {exc}); "
                        f"kept the {out.tell()} bytes that did decompress")
    return out.getvalue()


def gather_lines(series: pl.Series | None, lines: list[int]) -> list[str | None]:
    """The text of these 1-based lines of a file's physical lines (None where out of range or unknown)."""
    if series is None:
        return [None] * len(lines)
    n = series.len()
    return series.gather(pl.Series([ln - 1 if 1 <= ln <= n else None for ln in lines], dtype=pl.Int64)).to_list()


def _decompress(raw: bytes, compression: str, path: str, warnings: list[str],
                budget: _Budget | None = None) -> bytes:
    """Decompress a whole stream in chunks; a truncated stream yields what did decompress, with a
    warning, and decompression stops (with a warning) when the budget is spent."""
    budget = budget or _Budget(len(raw))
    try:
        if compression == "gzip":
            stream: io.BufferedIOBase = gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb")
        elif compression == "bzip2":
            stream = bz2.BZ2File(io.BytesIO(raw), "rb")
        else:
            stream = lzma.LZMAFile(io.BytesIO(raw), "rb")
    except Exception as exc:
        warnings.append(f"{path}: {compression} stream cannot be opened ({type(exc).__name__}: {exc})")
        return b""
    with stream:
        return _read_capped(stream, path, f"{compression} stream", budget, warnings)


def read_source(path: str | Path) -> list[Source]:
    """Read one evidence file read-only; a zip yields one :class:`Source` per member.

    The SHA-256 of the file's bytes is taken before anything is decompressed or parsed.
    Compressed layers and archives nested inside each other are opened up to
    :data:`MAX_ARCHIVE_DEPTH` layers deep, in memory only (nothing is ever extracted to disk).

    Raises:
        LogForensicsError: the file cannot be read at all.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:  # read-only; never written, moved or locked
            st = os.fstat(fh.fileno())
            raw = fh.read()
    except OSError as exc:
        raise LogForensicsError(f"cannot read: {exc.strerror or exc}", path=str(p)) from None
    digest = hashlib.sha256(raw).hexdigest()
    budget = _Budget(len(raw))
    return list(_unpack(str(p), raw, st.st_size, digest, st.st_mtime, [], budget, []))


def _unpack(name: str, data: bytes, size: int, sha: str | None, mtime: float | None, chain: list[str],
            budget: _Budget, warnings: list[str]) -> Iterator[Source]:
    """Open the compression or archive layers of ``data`` (``chain`` are the layers already opened).

    ``sha`` is the digest to record (the file's own); ``None`` for archive members, whose digest is
    taken of the bytes finally read.
    """
    kind = sniff_compression(data[:8])
    if kind is not None and len(chain) >= MAX_ARCHIVE_DEPTH:
        warnings = [*warnings, f"{name}: {kind} data nested {len(chain) + 1} layers deep (limit "
                               f"{MAX_ARCHIVE_DEPTH}); not opened"]
        sha = sha or hashlib.sha256(data).hexdigest()
        data, kind = b"", None
        chain = [*chain, "nested"]
    if kind is None:
        yield Source(name, size, sha or hashlib.sha256(data).hexdigest(), mtime,
                     "+".join(chain) or None, data, warnings)
    elif kind == "zip":
        yield from _zip_members(name, data, size, sha, mtime, [*chain, kind], budget, warnings)
    else:
        warnings = list(warnings)
        out = _decompress(data, kind, name, warnings, budget)
        del data
        yield from _unpack(name, out, size, sha, mtime, [*chain, kind], budget, warnings)


def _zip_members(path: str, raw: bytes, size: int, sha: str | None, mtime: float | None, chain: list[str],
                 budget: _Budget, warnings: list[str]) -> Iterator[Source]:
    """Zip members as in-memory streams (never extracted to disk), named ``archive.zip!member``.

    A member's name is only a name: ``../../x`` or ``/etc/passwd`` become ``archive.zip!../../x``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except Exception as exc:  # BadZipFile, but hostile headers raise others too
        yield Source(path, size, sha or hashlib.sha256(raw).hexdigest(), mtime, "+".join(chain), b"",
                     [*warnings, f"{path}: corrupt zip archive ({type(exc).__name__}: {exc}); nothing read"])
        return
    with archive:
        for info in infos:
            name = f"{path}!{info.filename}"
            member_warnings = list(warnings)
            try:
                with archive.open(info) as stream:
                    data = _read_capped(stream, name, "zip member", budget, member_warnings)
            except Exception as exc:  # encrypted, unsupported method, bad local header
                data = b""
                member_warnings.append(f"{name}: cannot read zip member ({type(exc).__name__}: {exc})")
            yield from _unpack(name, data, info.file_size, None, mtime, chain, budget, member_warnings)


def iter_input_files(paths: list[str | Path]) -> Iterator[Path]:
    """Every regular file named, or found below a named folder, in a stable (sorted) order.

    Raises:
        LogForensicsError: a named path does not exist.
    """
    for given in paths:
        p = Path(given)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    child = Path(root) / name
                    if child.is_file() and not name.startswith("."):
                        yield child
        elif p.is_file():
            yield p
        elif not p.exists():
            raise LogForensicsError("no such file or folder", path=str(p))
