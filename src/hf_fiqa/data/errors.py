"""Errors raised by the dataset loaders, and the tally kept when bad items are skipped.

Every loader either stops at the first bad item with an error that names the file (and the
line, record or byte offset inside it), or, when called with ``skip_errors=True``, drops the
item, records why in a :class:`SkipLog` and keeps going. The log is what lets a caller say
"converted 5,822,650 records, skipped 3" instead of silently losing data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger("hf_fiqa.data")


class DatasetFormatError(ValueError):
    """A dataset file is missing, malformed or inconsistent. The message names the file."""


@dataclass
class SkipLog:
    """Items a loader dropped because of ``skip_errors=True``: ``(item, reason)`` pairs."""

    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.skipped)

    def add(self, item: str, reason: str) -> None:
        self.skipped.append((item, reason))

    def summary(self, limit: int = 5) -> str:
        """One line for logs and CLI output: the count plus the first few reasons."""
        if not self.skipped:
            return "skipped 0 items"
        head = "; ".join(f"{item}: {reason}" for item, reason in self.skipped[:limit])
        more = f" (+{self.count - limit} more)" if self.count > limit else ""
        return f"skipped {self.count} item(s): {head}{more}"


def handle_bad_item(
    item: str, reason: str, *, skip_errors: bool, skipped: SkipLog | None, error: type[Exception] = DatasetFormatError
) -> None:
    """Raise ``error(item: reason)`` or, when skipping, log it and add it to ``skipped``."""
    if not skip_errors:
        raise error(f"{item}: {reason}")
    logger.warning("skipping %s: %s", item, reason)
    if skipped is not None:
        skipped.add(item, reason)


def skip_or_raise(exc: Exception, item: str, *, skip_errors: bool, skipped: SkipLog | None) -> None:
    """Re-raise ``exc`` (already naming ``item``) or, when skipping, log and record it."""
    if not skip_errors:
        raise exc
    logger.warning("skipping %s: %s", item, exc)
    if skipped is not None:
        skipped.add(item, str(exc))
