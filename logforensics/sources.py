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
    """Physical lines (LF or CRLF), in order; a final line without a newline is kept."""
    parts = text.split("\n")
    if text.endswith("\n") or not text:
        parts.pop()
    series = pl.Series("raw", parts, dtype=pl.String)
    return series.str.strip_suffix("\r") if "\r" in text else series


def _decompress(raw: bytes, compression: str, path: str, warnings: list[str]) -> bytes:
    """Decompress a whole stream; a truncated stream yields what did decompress, with a warning."""
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}[compression]
    out = bytearray()
    try:
        with opener(io.BytesIO(raw), "rb") as stream:
            while chunk := stream.read(1 << 20):
                out += chunk
    except (EOFError, OSError, lzma.LZMAError) as exc:
        warnings.append(f"{path}: {compression} stream is truncated or corrupt ({exc}); "
                        f"kept the {len(out)} bytes that did decompress")
    return bytes(out)


def read_source(path: str | Path) -> list[Source]:
    """Read one evidence file read-only; a zip yields one :class:`Source` per member.

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
    compression = sniff_compression(raw[:8])
    warnings: list[str] = []
    if compression == "zip":
        return list(_zip_members(str(p), raw, st.st_mtime, warnings))
    data = _decompress(raw, compression, str(p), warnings) if compression else raw
    return [Source(str(p), st.st_size, digest, st.st_mtime, compression, data, warnings)]


def _zip_members(path: str, raw: bytes, mtime: float, warnings: list[str]) -> Iterator[Source]:
    """Zip members as streams (never extracted to disk), named ``archive.zip!member``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as exc:
        yield Source(path, len(raw), hashlib.sha256(raw).hexdigest(), mtime, "zip", b"",
                     [f"{path}: corrupt zip archive ({exc}); nothing read"])
        return
    for info in infos:
        member_warnings = list(warnings)
        try:
            data = archive.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            data = b""
            member_warnings.append(f"{path}!{info.filename}: cannot read zip member ({exc})")
        inner = sniff_compression(data[:8])
        name = f"{path}!{info.filename}"
        if inner in ("gzip", "bzip2", "xz"):
            data = _decompress(data, inner, name, member_warnings)
        yield Source(name, info.file_size, hashlib.sha256(data).hexdigest(), mtime,
                     f"zip+{inner}" if inner else "zip", data, member_warnings)


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
