"""`journeys generate`: write synthetic sample exports (clickstream, bookings, payments) and
their ground truth."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex

from transforms.errors import UserError


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="write synthetic sample exports and their ground truth",
        description="Simulate customers of a beauty-booking app and write one export file per "
        "day per source: OUT/clickstream/YYYY-MM-DD.jsonl, OUT/bookings/YYYY-MM-DD.csv, "
        "OUT/payments/YYYY-MM-DD.csv, plus ground_truth.json (story parameters, exact dirt "
        "counts, realised figures). Same seed and options give byte-identical files.",
    )
    p.add_argument("--customers", type=int, required=True, help="customers to simulate")
    p.add_argument("--days", type=int, required=True, help="days of exports to write")
    p.add_argument("--seed", type=int, required=True, help="random seed")
    p.add_argument("--out", required=True, help="output directory (the 'raw' folder)")
    p.add_argument("--start", type=_date, default=dt.date(2026, 10, 1),
                   help="first export day, YYYY-MM-DD (default 2026-10-01)")
    p.add_argument("--ground-truth", default=None,
                   help="where to write ground_truth.json (default OUT/ground_truth.json)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace export files already in OUT")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sample.generator import generate

    if args.customers < 1 or args.days < 1:
        raise UserError("--customers and --days must be at least 1")
    cmd = ["journeys", "generate", "--customers", str(args.customers), "--days", str(args.days),
           "--seed", str(args.seed), "--start", args.start.isoformat(), "--out", args.out]
    if args.ground_truth:
        cmd += ["--ground-truth", args.ground_truth]
    result = generate(args.customers, args.days, args.seed, Path(args.out), start=args.start,
                      ground_truth_path=args.ground_truth, generated_by=shlex.join(cmd),
                      overwrite=args.overwrite)
    total_bytes = sum(f.stat().st_size for f in result.files)
    print(f"wrote {len(result.files)} files ({total_bytes / 1e6:.1f} MB) to {args.out}")
    for source, n in result.lines.items():
        print(f"  {source:<12} {n:>12,} rows")
    dirt = result.ground_truth["dirt"]
    for source, kinds in dirt.items():
        planted = ", ".join(f"{k} {v}" for k, v in kinds.items() if v)
        print(f"  {source:<12} dirt: {planted or 'none'}")
    print(f"ground truth: {result.ground_truth_path}")
    print(f"elapsed: {result.elapsed_seconds:.1f} s")
    return 0
