"""Cost of a long history in one file: `journeys run` on an orders export spanning many days
(not a test). Ingest should grow with rows, not with the number of daily partitions.

    .venv/bin/python bench/bench_history.py --rows 135000 --days 548 [--workdir DIR]

Writes one tab-separated orders file (no date in its name, YYYYMMDD dates) with the orders
example's generator and config (examples/orders), runs the whole pipeline in its own process and
prints
wall seconds, CPU seconds and peak resident memory, and the raw step's own time from the run's
progress lines. The load alone (`transforms.ingest.load_range`, without Dagster's bookkeeping of
one materialisation per daily partition) is measured by
`bench/bench_ingest.py --history --rows N --days D`.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import JOURNEYS, measure_cpu  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "orders"


def _write_orders() -> object:
    spec = importlib.util.spec_from_file_location("make_export", EXAMPLE / "make_export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_orders


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=135_000)
    p.add_argument("--days", type=int, default=548)
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_history_"))
    root.mkdir(parents=True, exist_ok=True)
    _write_orders()(root / "history.tsv", args.rows, args.days)
    # the orders example's config, its warehouse and outputs in the work folder
    for file in ("sources.yaml", "journey_map.yaml"):
        text = (EXAMPLE / file).read_text()
        (root / file).write_text(text.replace("../../warehouse/orders/", "warehouse/").replace(
            "../../output/orders", "output"))
    log = root / "run.log"
    command = [str(JOURNEYS), "run", "--config", str(root / "sources.yaml")]
    wall, cpu, rss, code = measure_cpu(command, log,
                                       env={"DAGSTER_HOME": str(root / "dagster_home")})
    raw = re.search(r"raw_orders\s+[\d,]+ partitions\s+took\s+([\d.]+) s", log.read_text())
    print(f"history: {args.rows:,} rows over {args.days} days in one file ({root})")
    print(f"journeys run: exit {code}, wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS "
          f"{rss:.0f} MiB; raw step {raw.group(1) if raw else '?'} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
