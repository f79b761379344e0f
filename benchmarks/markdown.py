"""How numbers are written in ``summary.md``: three significant digits, ``median [min–max]``, tables.

One place for these rules so the targets table and every section table read alike.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any


def fmt(x: float | None, digits: int = 3) -> str:
    """``digits`` significant digits; whole numbers with thousands separators from 100 up."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fmt_range(s: Mapping[str, float] | None, digits: int = 3) -> str:
    """``median [min–max]`` of a summary (:func:`benchmarks.timing.summarize`); the median alone for one sample."""
    if not s or s.get("n", 0) == 0:
        return "—"
    if s["n"] == 1:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} [{fmt(s['min'], digits)}–{fmt(s['max'], digits)}]"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def when(section: Mapping[str, Any]) -> str:
    """When a section was measured and how loaded the machine was: every section heading says it."""
    cond = section.get("conditions", {})
    la = cond.get("load_average_start")
    load = f", load average at start {la[0]:.2f}" if la else ""
    return f"measured {section.get('date_utc', '?')}{load}"


class _Numbers(string.Formatter):
    """``str.format`` where a number without a format spec is written with :func:`fmt`."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if not format_spec and isinstance(value, (int, float)) and not isinstance(value, bool):
            return fmt(value)
        return super().format_field(value, format_spec)


_NUMBERS = _Numbers()


def fill(template: str, **values: Any) -> str:
    """``template.format(**values)``, numbers without a spec written as :func:`fmt` does."""
    return _NUMBERS.format(template, **values)


def fields(template: str) -> set[str]:
    """The names a template refers to (``"{a} and {b:.1f}"`` -> ``{"a", "b"}``)."""
    return {name for _, name, _, _ in _NUMBERS.parse(template) if name}
