"""How often the findings engine reports something on logs with nothing in them.

Generates clean logs (tests/transforms/test_findings.py's generator: 4,000 actors, 120 days,
three platforms, visit -> cart -> pay at constant rates) for seeds 0..N-1, runs the engine and
prints the share of logs with at least one finding, and the wall time per log.

    .venv/bin/python -m bench.bench_findings_false_rate [N]
"""

from __future__ import annotations

import sys
import time

from tests.transforms.test_findings import findings_of, generate


def main(n: int = 30) -> None:
    hits, wall = [], 0.0
    for seed in range(n):
        df = generate(1000 + seed)
        t = time.perf_counter()
        found = findings_of(df)
        wall += time.perf_counter() - t
        if found:
            hits.append((1000 + seed, [f.sentence() for f in found]))
    print(f"clean logs: {n}; with a finding: {len(hits)} ({len(hits) / n:.1%}); "
          f"engine wall per log: {wall / n:.2f} s")
    for seed, sentences in hits:
        print(f"  seed {seed}: " + " | ".join(sentences))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
