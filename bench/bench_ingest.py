"""Cost of ingestion alone (not a test): every source of a config loaded over its whole data
range into a fresh warehouse, the way `journeys run` loads it (`transforms.ingest.load_range`),
and the cost of a long history in one undated file.

    .venv/bin/python bench/bench_ingest.py --config /tmp/h5/bench/1m/sources.yaml --workdir DIR
    .venv/bin/python bench/bench_ingest.py --history --rows 135000 --days 548 --workdir DIR

Each source's load runs in its own process (`bench.measure.measure`), so its figures hold that
load alone: CPU seconds (user + system of every thread), wall seconds and peak RSS. The config's
warehouse is never written: the loads go to DIR/warehouse. `--profile` also writes DuckDB's
per-statement costs (DIR/profile_<source>.txt: CPU and wall seconds and the peak RSS while it
ran, per statement, costliest first) and a cProfile of the Python side
(DIR/profile_<source>.pstats).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import measure  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "orders"


def _config_copy(config: Path, root: Path) -> Path:
    """`config` with its warehouse and outputs moved under `root` (paths made absolute)."""
    text = config.read_text()
    text = re.sub(r"(?m)^warehouse:.*$", f"warehouse: {root / 'warehouse' / 'journeys.duckdb'}",
                  text)
    text = re.sub(r"(?m)^output_dir:.*$", f"output_dir: {root / 'output'}", text)
    text = re.sub(r"(?m)^journey_map: (?!/)(.*)$",
                  lambda m: f"journey_map: {(config.parent / m.group(1)).resolve()}", text)
    text = re.sub(r"(?m)^(\s+path: )(?!/)(.*)$",
                  lambda m: f"{m.group(1)}{(config.parent / m.group(2)).resolve()}", text)
    out = root / "sources.yaml"
    out.write_text(text)
    return out


def _history(root: Path, rows: int, days: int) -> Path:
    """The orders example's config over one undated file of `rows` orders across `days`."""
    spec = importlib.util.spec_from_file_location("make_export", EXAMPLE / "make_export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root.mkdir(parents=True, exist_ok=True)
    module.write_orders(root / "history.tsv", rows, days)
    for file in ("sources.yaml", "journey_map.yaml"):
        text = (EXAMPLE / file).read_text()
        (root / file).write_text(text.replace("../../warehouse/orders/", "warehouse/").replace(
            "../../output/orders", "output"))
    return root / "sources.yaml"


def child(config: Path, source_name: str, profile: Path | None) -> None:
    """Load one source over the config's whole data range (the other sources untouched)."""
    from transforms import ingest, warehouse
    from transforms.sources import load_config

    cfg = load_config(config)
    first, last = cfg.data_range()
    source = cfg.sources[source_name]
    with warehouse.connect(cfg.warehouse) as con:
        if profile is None:
            stats = ingest.load_range(con, source, first, last)
        else:
            import cProfile

            statements: list[tuple[float, str]] = []
            prof = cProfile.Profile()
            prof.enable()
            stats = _profiled_load(con, ingest, source, first, last, statements, profile)
            prof.disable()
            prof.dump_stats(str(profile.with_suffix(".pstats")))
    print(json.dumps({"source": source_name, "first": str(first), "last": str(last),
                      "partitions": len(stats), "read": sum(s.rows_read for s in stats),
                      "loaded": sum(s.rows_loaded for s in stats),
                      "quarantined": sum(s.rows_quarantined for s in stats),
                      "duplicates": sum(s.rows_duplicate for s in stats)}))


def _profiled_load(con, ingest, source, first, last, statements, profile: Path):
    """load_range with every statement timed (CPU and wall seconds summed by statement text,
    costliest first, written to `profile`)."""
    import time

    class Timed:
        """The connection, with `execute` and `executemany` timing each statement."""

        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def execute(self, sql, *args, **kwargs):
            _reset_peak()
            started, cpu = time.perf_counter(), _cpu()
            result = self._inner.execute(sql, *args, **kwargs)
            statements.append((time.perf_counter() - started, _cpu() - cpu, _peak_mib(),
                               " ".join(str(sql).split())))
            return result

        def executemany(self, sql, *args, **kwargs):
            _reset_peak()
            started, cpu = time.perf_counter(), _cpu()
            result = self._inner.executemany(sql, *args, **kwargs)
            statements.append((time.perf_counter() - started, _cpu() - cpu, _peak_mib(),
                               "MANY " + " ".join(sql.split())))
            return result

    stats = ingest.load_range(Timed(con), source, first, last)
    by_text: dict[str, list[tuple[float, float, float]]] = {}
    for seconds, cpu, peak, text in statements:
        by_text.setdefault(text, []).append((seconds, cpu, peak))
    ranked = sorted(by_text.items(), key=lambda kv: -sum(c for _, c, _ in kv[1]))
    wall = sum(s[0] for s in statements)
    cpu = sum(s[1] for s in statements)
    peak = max((s[2] for s in statements), default=0.0)
    with profile.open("w") as out:
        out.write(f"{len(statements)} statements: {cpu:.2f} CPU s, {wall:.2f} s wall, "
                  f"peak RSS {peak:.0f} MiB\n"
                  "   CPU s   wall s  peak MiB  times  statement (peak: the process's largest "
                  "RSS while it ran)\n")
        for text, times in ranked[:40]:
            out.write(f"{sum(c for _, c, _ in times):8.2f} {sum(s for s, _, _ in times):8.2f}"
                      f"  {max(m for _, _, m in times):8.0f}  x{len(times):<4} {text[:400]}\n")
    return stats


def _reset_peak() -> None:
    """Reset the process's peak RSS (Linux: /proc/self/clear_refs), so the next reading of
    VmHWM is the peak of what runs in between; nothing elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mib() -> float:
    """The process's peak RSS since the last `_reset_peak` (VmHWM), MiB; 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu() -> float:
    """CPU seconds of this process so far (every thread: DuckDB's too)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--history", action="store_true",
                   help="a long history in one undated file (the orders example)")
    p.add_argument("--rows", type=int, default=135_000)
    p.add_argument("--days", type=int, default=548)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--sources", nargs="*", default=None)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "SOURCE"), help=argparse.SUPPRESS)
    p.add_argument("--profile-to", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], args.profile_to)
        return 0
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="bench_ingest_"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if args.history:
        config = _history(root, args.rows, args.days)
    elif args.config is not None:
        config = _config_copy(args.config.resolve(), root)
    else:
        p.error("give --config FILE or --history")
    import shutil

    from transforms.sources import load_config

    shutil.rmtree(root / "warehouse", ignore_errors=True)
    names = args.sources or list(load_config(config).sources)
    print(f"{'source':<14} {'CPU s':>8} {'wall s':>8} {'peak MiB':>9}  rows")
    for name in names:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(config), name]
        if args.profile:
            command += ["--profile-to", str(root / f"profile_{name}.txt")]
        m = measure(command, root / f"ingest_{name}.log", cwd=REPO)
        lines = m.log.read_text().strip().splitlines()
        summary = lines[-1] if m.exit_code == 0 and lines else f"failed, see {m.log}"
        print(f"{name:<14} {m.cpu_s:8.1f} {m.wall_s:8.1f} {m.peak_rss_mib:9.0f}  {summary}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
