"""Errors of the model side that carry one human line (bad config, bad checkpoint, bad input shape).

``ModelError`` derives from ``DreamerDataError`` so the CLI's one-line error reporting covers both
halves of the project the same way.
"""

from __future__ import annotations

from dreamer_data.errors import DreamerDataError


class ModelError(DreamerDataError):
    """A config, checkpoint or model input that cannot be used; the message names the file and problem."""
