"""Durations written as text (`14d`, `90m`, `1.5h`): one grammar for every window in the project.

Grammar (whitespace around the number and the unit is ignored)::

    duration := NUMBER [UNIT]
    NUMBER   := DIGITS ["." DIGITS]          e.g. 14, 1.5 (no sign, no exponent)
    UNIT     := s | m | h | d | w            seconds, minutes, hours, days (86400 s), weeks

A bare number means seconds. Units are lower case. A day is always 86400 seconds and a week
604800: durations are absolute seconds, so daylight-saving changes do not move them; calendar
months and years are not units because their length varies. The value is rounded to the nearest
whole second (a tie goes to the even second, as Python's `round`), and must come to at least one
second.

This is the union of what the funnel CLI's `--window` (whole numbers, units s..w, bare seconds)
and the journey map's `conversion_window` (decimals, units s..d) accepted before.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

from transforms.errors import UserError

UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# what every error message offers as the fix: the accepted forms
FIX = ("use a number (decimals allowed) with a unit s, m, h, d or w, e.g. 30s, 90m, 1.5h, 30d "
       "or 2w; a bare number means seconds")

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


class DurationError(UserError, ValueError):
    """A duration text that does not follow the grammar. `problem` says what is wrong (naming
    the text) and `fix` names the accepted forms, so a config loader can report them as a
    ConfigError(path, key, problem, fix)."""

    def __init__(self, text: object, problem: str, fix: str, what: str) -> None:
        self.text = text
        self.problem = problem
        self.fix = fix
        super().__init__(f"invalid {what}: {problem}; {fix}")


def parse_duration(text: str, *, what: str = "duration") -> int:
    """Whole seconds of a duration such as '14d', '90m', '1.5h', '2w' or '3600' (see the module
    docstring for the grammar).

    `what` names the value in the error message ("invalid window: ..."). Raises DurationError
    (a UserError and a ValueError) for text that does not match, an unknown unit, or a duration
    under one second.
    """
    if not isinstance(text, str):
        raise DurationError(text, f"expected text like 30d, got {type(text).__name__} {text!r}",
                            FIX, what)
    m = _DURATION.fullmatch(text)
    if not m:
        raise DurationError(text, f"expected <number><unit> like 30d, got {text!r}", FIX, what)
    number, unit = m.group(1), m.group(2)
    if unit and unit not in UNITS:
        raise DurationError(text, f"unknown time unit {unit!r} in {text!r}",
                            FIX + " (calendar months and years are not allowed because their "
                            "length varies)", what)
    seconds = int((Decimal(number) * UNITS[unit or "s"]).to_integral_value(ROUND_HALF_EVEN))
    if seconds < 1:
        raise DurationError(text, f"{text!r} comes to less than one second", FIX, what)
    return seconds
