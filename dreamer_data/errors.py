"""Errors that carry one human line: what file, what went wrong.

The CLI prints ``str(error)`` alone (no traceback) for these, so every message must name the
file or store it is about.
"""

from __future__ import annotations


class DreamerDataError(Exception):
    """A problem with user input (bad path, bad config) that stops the whole command."""


class EpisodeError(DreamerDataError):
    """One episode cannot be ingested; the rest of the run goes on and it is recorded as failed."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


class StoreError(DreamerDataError):
    """A store is missing, malformed, or fails verification."""
