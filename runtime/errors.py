"""The one exception type the runtime raises for bad input or bad artifacts."""

from __future__ import annotations


class M7Error(Exception):
    """Something about an artifact or an input is wrong; the message says what and what to do."""
