"""How often the findings engine reports something on logs with nothing in them.

Generates clean logs (tests/transforms/test_findings.py's generator: 4,000 actors, 120 days,
three platforms, visit -> cart -> pay at constant rates) for seeds 0..N-1, runs the engine and
prints the share of logs with at least one finding, and the wall and CPU time (this process,
every thread) per log.

    .venv/bin/python -m bench.bench_findings_false_rate [N]
"""

from __future__ import annotations

import sys
import time

from tests.transforms.test_findings import findings_of, generate


def main(n: int = 30) -> None:
    hits, wall, cpu = [], 0.0, 0.0
    for seed in range(n):
        df = generate(1000 + seed)
        t, c = time.perf_counter(), time.process_time()
        found = findings_of(df)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        if found:
            hits.append((1000 + seed, [f.sentence() for f in found]))
    print(f"clean logs: {n}; with a finding: {len(hits)} ({len(hits) / n:.1%}); "
          f"engine per log: wall {wall / n:.2f} s, CPU {cpu / n:.2f} s")
    for seed, sentences in hits:
        print(f"  seed {seed}: " + " | ".join(sentences))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
