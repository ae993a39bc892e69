"""What can go wrong reading or changing flags, each with a message an operator can act on."""

from __future__ import annotations


class FlagError(Exception):
    """A change that cannot be made as asked: bad input, an unknown or read-only flag."""


class FlagFileError(FlagError):
    """A flag document that cannot be read (missing, not UTF-8, not JSON, not flagd's shape) or is read-only."""

    def __init__(self, source: str, message: str, line: int | None = None):
        self.source, self.message, self.line = source, message, line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class UnknownFlagError(FlagError):
    """The document has no flag of that name."""


class ReadOnlyFlagError(FlagError):
    """The flag's targeting was not written by Brahma, so Brahma leaves it alone."""


class VersionConflict(Exception):
    """The document changed after it was read, so the write was not made."""
