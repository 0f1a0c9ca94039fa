"""logforensics: forensic analysis of historical mail-relay abuse in archived SMTP logs."""

from __future__ import annotations

__version__ = "0.1.0"
TOOL_NAME = "logforensics"
