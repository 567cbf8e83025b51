"""Number formats a reader can take in at a glance: 12,345 · 12.3% · +1.2 pp · 3.5 h · 2.1 d.

Every function accepts None / NaN and returns an en dash for "no value", so a missing number never
renders as "nan" or "None".
"""

from __future__ import annotations

import math
from typing import Any

NO_VALUE = "–"


def _missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(math.isnan(float(x)))
    except (TypeError, ValueError):
        return True


def count(x: Any) -> str:
    """An integer count with thousands separators: 12345 -> '12,345'."""
    if _missing(x):
        return NO_VALUE
    return f"{round(float(x)):,d}"


def pct(x: Any, digits: int = 1) -> str:
    """A share (0..1) as a percentage: 0.1234 -> '12.3%'."""
    if _missing(x):
        return NO_VALUE
    return f"{float(x) * 100:,.{digits}f}%"


def pp(delta: Any) -> str:
    """A difference of two shares in percentage points: 0.012 -> '+1.2 pp'."""
    if _missing(delta):
        return NO_VALUE
    return f"{float(delta) * 100:+,.1f} pp"


def signed_pct(ratio: Any) -> str:
    """A relative change: 0.05 -> '+5.0%'."""
    if _missing(ratio):
        return NO_VALUE
    return f"{float(ratio) * 100:+,.1f}%"


def money(x: Any, currency: str | None = None) -> str:
    """An amount with two decimals and its currency, if known: 1234.5 -> '1,234.50 EUR'."""
    if _missing(x):
        return NO_VALUE
    return f"{float(x):,.2f} {currency or ''}".strip()


def number(x: Any, digits: int = 1) -> str:
    """A plain decimal number: 3.14159 -> '3.1'."""
    if _missing(x):
        return NO_VALUE
    return f"{float(x):,.{digits}f}"


def duration(seconds: Any) -> str:
    """A duration in the unit that reads best: '45 s', '12 min', '3.5 h', '2.1 d'."""
    if _missing(seconds):
        return NO_VALUE
    s = float(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 60:
        return f"{sign}{s:.0f} s"
    if s < 3600:
        return f"{sign}{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{sign}{s / 3600:,.1f} h"
    return f"{sign}{s / 86400:,.1f} d"


def duration_unit(seconds: Any) -> tuple[str, float]:
    """The axis unit for durations around `seconds`: ('h', 3600.0) or ('d', 86400.0)."""
    if _missing(seconds) or float(seconds) < 2 * 86400:
        return "h", 3600.0
    return "d", 86400.0


# The site's one date format: '12 Oct 2026' (a day), '12 Oct 2026 13:05' (a moment, UTC);
# Plotly axes and hovers use the same through D3 formats.
DAY = "%d %b %Y"
MOMENT = "%d %b %Y %H:%M"
AXIS_DAY = "%d %b"
HOVER_DAY = "%{x|%d %b %Y}"


def day(d: Any) -> str:
    """A day: 2026-10-12 -> '12 Oct 2026'."""
    if d is None or (not isinstance(d, str) and _missing_time(d)):
        return NO_VALUE
    import pandas as pd

    return f"{pd.Timestamp(d):{DAY}}"


def moment(ts: Any) -> str:
    """A moment in UTC: '12 Oct 2026 13:05'."""
    if ts is None or (not isinstance(ts, str) and _missing_time(ts)):
        return NO_VALUE
    import pandas as pd

    return f"{pd.Timestamp(ts):{MOMENT}}"


def _missing_time(x: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def p_value(p: Any) -> str:
    """A p-value: '<0.001' for tiny ones, else three decimals."""
    if _missing(p):
        return NO_VALUE
    p = float(p)
    return "<0.001" if p < 0.001 else f"{p:.3f}"
