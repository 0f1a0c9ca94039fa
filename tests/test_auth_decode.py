"""User names from logged AUTH exchanges (LOGIN, PLAIN, NTLM type 3); passwords never surface."""

from __future__ import annotations

import base64
import struct

from logforensics.readers.auth_decode import auth_user, ntlm_user
from tests.conftest import read_log


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ntlm_type3(domain: str, user: str, unicode: bool = True) -> bytes:
    enc = "utf-16-le" if unicode else "cp1252"
    d, u, w = domain.encode(enc), user.encode(enc), b""
    header_len = 64
    payload = d + u + w
    fields = b""
    offset = header_len
    parts = {}
    for name, data in (("domain", d), ("user", u), ("ws", w)):
        parts[name] = struct.pack("<HHI", len(data), len(data), offset)
        offset += len(data)
    fields = (struct.pack("<HHI", 0, 0, header_len) * 2 + parts["domain"] + parts["user"] + parts["ws"]
              + struct.pack("<HHI", 0, 0, header_len))
    flags = struct.pack("<I", 0x1 if unicode else 0x2)
    return b"NTLMSSP\x00" + struct.pack("<I", 3) + fields + flags + payload


def test_decoders():
    assert auth_user("LOGIN", "VXNlcm5hbWU6", b64(b"mwong")) == "mwong"
    assert auth_user("LOGIN", "UGFzc3dvcmQ6", b64(b"secret")) is None  # the password answer
    assert auth_user("PLAIN", None, b64(b"\x00mwong\x00secret")) == "mwong"
    assert ntlm_user(ntlm_type3("ACME", "pjones")) == "ACME\\pjones"
    assert ntlm_user(ntlm_type3("ACME", "pjones", unicode=False)) == "ACME\\pjones"
    assert auth_user("NTLM", "TlRMTVNTUAACAAAA", "not base64!") is None
    assert ntlm_user(b"NTLMSSP\x00\x01\x00\x00\x00") is None


def test_auth_user_in_events(tmp_path):
    text = "\n".join([
        "6/14/00 3:40:20 PM : A connection was accepted from dialup-12.isp.example.",
        "6/14/00 3:40:21 PM : <<< AUTH LOGIN",
        "6/14/00 3:40:21 PM : >>> 334 VXNlcm5hbWU6",
        f"6/14/00 3:40:21 PM : <<< {b64(b'ACME' + bytes([92]) + b'mwong')}",
        "6/14/00 3:40:21 PM : >>> 334 UGFzc3dvcmQ6",
        f"6/14/00 3:40:22 PM : <<< {b64(b'hunter2')}",
        "6/14/00 3:40:22 PM : >>> 235 login authentication successful",
        "6/14/00 3:41:00 PM : A connection was accepted from lan-pc.",
        f"6/14/00 3:41:00 PM : <<< AUTH NTLM {b64(b'NTLMSSP' + bytes(1) + bytes([1, 0, 0, 0]))}",
        "6/14/00 3:41:00 PM : >>> 334 TlRMTVNTUAACAAAA",
        f"6/14/00 3:41:00 PM : <<< {b64(ntlm_type3('ACME', 'pjones'))}",
        "6/14/00 3:41:00 PM : >>> 235 ntlm authentication successful",
    ]) + "\n"
    res = read_log(tmp_path, text)
    users = res.events.filter(res.events["auth_user"].is_not_null()).select("line", "auth_user").rows()
    assert users == [(4, "ACME\\mwong"), (11, "ACME\\pjones")]
    assert "hunter2" not in " ".join(u for _, u in users)
