"""Errors a user can act on: the CLI prints them as one line, without a traceback."""

from __future__ import annotations

import math


class UserError(Exception):
    """A problem with the user's input (a path, a file, an option), stated so they can fix it."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, carrying what the interrupted command kept and how to continue; the CLI prints it as one line."""


def check_range(name: str, value, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, integer: bool = False):
    """``value`` when it is a finite number with ``low <= value <= high`` (``low < value`` if ``low_open``);
    else a UserError naming ``name`` and the range. Booleans are not numbers here.

    Example:
        >>> check_range("--lr", 0.1, low=0, low_open=True)
        0.1
    """
    number = isinstance(value, int) if integer else isinstance(value, (int, float))
    ok = number and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        lowest = "-inf" if low is None else low
        interval = f"{'(' if low_open else '['}{lowest}, " + ("inf)" if high is None else f"{high}]")
        kind = "an integer" if integer else "a finite number"
        raise UserError(f"{name}: must be {kind} in {interval}, got {value!r}")
    return value
