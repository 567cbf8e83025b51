"""Write an orders export to examples/orders/history.tsv: one file for all history, no date in
its name, dates written YYYYMMDD.

    python examples/orders/make_export.py [--rows 2000] [--days 548] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from pathlib import Path

OUT = Path(__file__).with_name("history.tsv")


def write_orders(out: Path, rows: int = 2000, days: int = 548, seed: int = 5,
                 start: dt.date = dt.date(2023, 1, 1)) -> list[tuple[str, str, dt.date, float]]:
    """Write `rows` orders of about rows/4 customers over `days` days; returns them."""
    rng = random.Random(seed)
    orders = []
    with out.open("w") as fh:
        fh.write("order_id\tcustomer\tdate\tamount\n")
        for n in range(rows):
            day = start + dt.timedelta(days=rng.randrange(days))
            amount = rng.randint(100, 9999) / 100
            customer = f"c{rng.randrange(rows // 4 + 1)}"
            orders.append((f"o{n}", customer, day, amount))
            fh.write(f"o{n}\t{customer}\t{day:%Y%m%d}\t{amount:.2f}\n")
    return orders


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--days", type=int, default=548)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    write_orders(a.out, a.rows, a.days)
    print(a.out)
