"""`journeys init`: inspect events exports and write a commented project config for them.

The guessing is `transforms.inspect`: formats, delimiters, encodings, headers, time formats,
each column's role and the stages. This command prints what was guessed and why, writes
`DIR/sources.yaml` and `DIR/journey_map.yaml`, and validates them with
`transforms.project.load_project`, as `journeys run` will (a file that does not validate is a
bug in init, reported as such).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transforms.errors import ConfigError, UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        help="inspect events exports and write sources.yaml and journey_map.yaml for them",
        description="Inspect each events file (format, delimiter, encoding, header, time "
        "format), guess each column's role (customer, event, time, order, amount, ...) and the "
        "journey stages, and write a commented DIR/sources.yaml and DIR/journey_map.yaml that "
        "`journeys run --config DIR/sources.yaml` runs as they are. Prints every guess, why, "
        "and what to check.",
    )
    parser.add_argument("--events", action="append", required=True, metavar="FILE",
                        help="an export file (CSV/TSV/text, JSON lines, Parquet, XES; "
                        ".gz/.zst); repeat for several sources")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="project folder to write sources.yaml and journey_map.yaml to")
    parser.add_argument("--force", action="store_true",
                        help="overwrite sources.yaml / journey_map.yaml already in DIR")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from transforms.inspect import propose, write_proposal
    from transforms.project import load_project

    out = Path(args.out).expanduser().resolve()
    for name in ("sources.yaml", "journey_map.yaml"):
        if (out / name).exists() and not args.force:
            raise UserError(f"{out / name} exists; pass --force to overwrite it, or choose "
                            "another --out")
    for f in args.events:
        if not Path(f).expanduser().is_file():
            raise UserError(f"--events {f}: no such file")
    proposal = propose(args.events, out)
    for line in proposal.lines:
        print(line)
    sources, jmap = write_proposal(proposal, out)
    try:
        load_project(sources)
    except ConfigError as exc:
        raise UserError(f"bug in journeys init: the config it wrote does not validate: {exc} "
                        "(please report it; edit the file by hand meanwhile)") from None
    if proposal.checks:
        print("check:")
        for c in proposal.checks:
            print(f"  - {c}")
    print(f"wrote {sources}")
    print(f"wrote {jmap}")
    print(f"next: journeys run --config {sources}")
    return 0
