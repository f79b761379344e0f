"""Errors of the converter. They derive from ``m7_runtime.M7Error`` so a caller catches one base."""

from __future__ import annotations

from m7_runtime.errors import M7Error


class ConvertError(M7Error):
    """Base of every error the converter raises on purpose."""


class SourceError(ConvertError):
    """The source file cannot be read: unknown type, truncated, or not an XGBoost model."""


class UnsafePickleError(SourceError):
    """The pickle references a global outside the allow-list; nothing in it was run."""


class UnsupportedModelError(ConvertError):
    """The model uses something the converter does not handle (objective, split type...)."""


class ParityError(ConvertError):
    """The converted graph disagrees with the source model; no artifact was written."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report
