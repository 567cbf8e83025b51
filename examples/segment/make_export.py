"""Write a small Segment-style export (track calls as JSON lines) to examples/segment/export.jsonl.

60 visitors browse a shop under an anonymous id; two in three log in before their last step: an
`identify` call links the anonymous id to the user id, and the calls after it carry both (as
Segment's analytics.js sends them). Each views a product; some add it to the cart; some
complete the order.

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
            at = start + dt.timedelta(minutes=10 * k)
            last = k == len(steps) - 1
            if last and user:  # logs in a minute before the last step
                calls.append({"messageId": f"m{len(calls) + 1}", "type": "identify",
                              "anonymousId": anon, "userId": user,
                              "timestamp": (at - dt.timedelta(minutes=1)).isoformat() + "Z",
                              "traits": {"plan": "free"}, "context": {"os": {"name": "iOS"}}})
            call = {"messageId": f"m{len(calls) + 1}", "type": "track", "event": name,
                    "anonymousId": anon, "timestamp": at.isoformat() + "Z",
                    "properties": {"sku": f"s{i % 4}"}, "context": {"os": {"name": "iOS"}}}
            if last and user:
                call["userId"] = user
            calls.append(call)
    return calls


if __name__ == "__main__":
    OUT.write_text("".join(json.dumps(c) + "\n" for c in export_calls()))
    print(OUT)
