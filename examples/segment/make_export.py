"""Write a small Segment-style export (track calls as JSON lines) to examples/segment/export.jsonl.

60 visitors browse a shop under an anonymous id; two in three log in on their last call, which
then carries their user id too (how Segment's analytics.js sends a track after identify). Each
views a product; some add it to the cart; some complete the order.

    python examples/segment/make_export.py
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

OUT = Path(__file__).with_name("export.jsonl")
STEPS = ["Product Viewed", "Product Added", "Order Completed"]


def export_calls(visitors: int = 60) -> list[dict]:
    """The export's calls in time order (deterministic)."""
    t0 = dt.datetime(2025, 3, 1, 8, 0)
    calls = []
    for i in range(visitors):
        anon, user = f"anon-{i}", (f"user-{i}" if i % 3 else None)
        start = t0 + dt.timedelta(hours=i * 5)
        steps = STEPS[:1 + i % 3]
        for k, name in enumerate(steps):
            call = {"messageId": f"m{len(calls) + 1}", "type": "track", "event": name,
                    "anonymousId": anon,
                    "timestamp": (start + dt.timedelta(minutes=10 * k)).isoformat() + "Z",
                    "properties": {"sku": f"s{i % 4}"}, "context": {"os": {"name": "iOS"}}}
            if k == len(steps) - 1 and user:
                call["userId"] = user
            calls.append(call)
    return calls


if __name__ == "__main__":
    OUT.write_text("".join(json.dumps(c) + "\n" for c in export_calls()))
    print(OUT)
