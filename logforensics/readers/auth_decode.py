"""Who logged in: the user name inside a logged SMTP AUTH exchange (never the password).

* ``AUTH LOGIN``: the client's answer to the ``334 VXNlcm5hbWU6`` ("Username:") challenge, or the
  initial response on the AUTH line, is the base64 user name.
* ``AUTH PLAIN``: base64 of ``authzid NUL authcid NUL password``; the authcid is the user.
* ``AUTH NTLM``: the type-3 message carries domain and user (UTF-16LE when negotiated), at the
  offsets given by [MS-NLMP] 2.2.1.3.
"""

from __future__ import annotations

import base64
import binascii
import struct

USERNAME_CHALLENGES = {"VXNlcm5hbWU6", "dXNlcm5hbWU6"}  # "Username:" / "username:"


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _printable(text: str) -> str | None:
    cleaned = text.strip()
    return cleaned if cleaned and all(c.isprintable() for c in cleaned) else None


def ntlm_user(blob: bytes) -> str | None:
    """``DOMAIN\\user`` from an NTLM type-3 message, or None."""
    if len(blob) < 64 or not blob.startswith(b"NTLMSSP\x00") or struct.unpack_from("<I", blob, 8)[0] != 3:
        return None
    flags = struct.unpack_from("<I", blob, 60)[0] if len(blob) >= 64 else 0
    encoding = "utf-16-le" if flags & 0x1 else "cp1252"

    def field(offset: int) -> str:
        length, _, start = struct.unpack_from("<HHI", blob, offset)
        return blob[start:start + length].decode(encoding, errors="replace") if start + length <= len(blob) else ""

    user, domain = field(36), field(28)
    if not user:
        return None
    return _printable(f"{domain}\\{user}" if domain else user)


def auth_user(mechanism: str | None, challenge: str | None, data: str | None) -> str | None:
    """The user name carried by one client line of an AUTH exchange, if any."""
    if not data:
        return None
    mech = (mechanism or "").upper()
    raw = _b64(data)
    if raw is None:
        return None
    if mech == "LOGIN" and (challenge is None or challenge.strip() in USERNAME_CHALLENGES):
        return _printable(raw.decode("utf-8", errors="replace"))
    if mech == "PLAIN":
        parts = raw.split(b"\x00")
        return _printable(parts[1].decode("utf-8", errors="replace")) if len(parts) == 3 else None
    if mech == "NTLM":
        return ntlm_user(raw)
    return None
