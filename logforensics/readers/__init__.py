"""The explicit registry of log formats: format name -> reader class.

Adding a format means writing a grammar in ``grammars/``, a reader here, and one line below.
"""

from __future__ import annotations

from logforensics.readers.base import ReadContext, Reader, ReadResult
from logforensics.readers.exchange_protocol import ExchangeProtocolReader
from logforensics.readers.exchange_tracking import ExchangeTrackingReader
from logforensics.readers.exim import EximReader
from logforensics.readers.ims55_protocol import Ims55ProtocolReader
from logforensics.readers.ims55_tracking import Ims55TrackingReader
from logforensics.readers.postfix import PostfixReader
from logforensics.readers.sendmail import SendmailReader
from logforensics.readers.w3c_smtp import W3cSmtpReader

READERS: dict[str, type[Reader]] = {
    Ims55ProtocolReader.name: Ims55ProtocolReader,
    Ims55TrackingReader.name: Ims55TrackingReader,
    PostfixReader.name: PostfixReader,
    SendmailReader.name: SendmailReader,
    EximReader.name: EximReader,
    W3cSmtpReader.name: W3cSmtpReader,
    ExchangeTrackingReader.name: ExchangeTrackingReader,
    ExchangeProtocolReader.name: ExchangeProtocolReader,
}

#: How many leading lines a sniffer sees.
SNIFF_LINES = 50

__all__ = ["READERS", "SNIFF_LINES", "ReadContext", "ReadResult", "Reader", "sniff_format"]


def sniff_format(head: list[str], minimum: float = 0.3) -> str | None:
    """The format whose sniffer is surest about these first lines, or ``None``."""
    best, best_score = None, minimum
    for name, reader in READERS.items():
        score = reader().sniff(head)
        if score > best_score:
            best, best_score = name, score
    return best
