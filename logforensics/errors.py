"""One error base class for the project, carrying a location (file, line, key)."""

from __future__ import annotations


class LogForensicsError(Exception):
    """A problem the user can fix: a bad argument, a missing file, a bad site profile.

    The CLI prints it as one line and exits with code 2, never with a traceback.

    Args:
        message: What is wrong, in plain words.
        path: The file concerned, if any.
        line: The 1-based line in that file, if known.
        key: The configuration key concerned (for site profiles), if any.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.key = key
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "")
        if self.key:
            where = f"{where} [{self.key}]" if where else f"[{self.key}]"
        return f"{where}: {self.message}" if where else self.message


class SiteProfileError(LogForensicsError):
    """The site profile (TOML) is malformed or has a bad value; names the key."""
