"""`sweep --profile P --vary KEY=V1,V2 [--vary ...] [--devices 0,1] [--dry-run]`: the grid of
variants of a profile, each in its own run folder under <run folder>/sweep/, sharing one
conversion per set of data settings, then one comparison table (sweep.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from . import PROG


def add(commands) -> None:
    parser = commands.add_parser(
        "sweep",
        prog=f"{PROG} sweep",
        help="run a grid of variants of a profile and compare them",
        description="Run every combination of the --vary values, each variant in its own run "
        "folder under <run folder>/sweep/; variants with the same data settings share one "
        "conversion and LMDB. A rerun skips finished variants and resumes the others. Ends "
        "with one table (markdown, CSV, JSON) and a bar chart in <run folder>/sweep/.",
    )
    parser.add_argument("--profile", required=True, type=Path, help="the base TOML profile")
    parser.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="KEY=V1,V2",
        help="a dotted profile key and its values, comma-separated (e.g. model.text=tiny,"
        "bert-base-uncased or train.lr=0.001,0.0005); repeat for a grid",
    )
    parser.add_argument("--workdir", type=Path, help="run folder (overrides the profile's)")
    parser.add_argument(
        "--devices",
        help="GPU ids (e.g. 0,1): variants side by side, one process per GPU "
        "(CUDA_VISIBLE_DEVICES); default: one after another in this process",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the variants and their plans; change nothing"
    )
    parser.set_defaults(handler=sweep)


def sweep(args) -> int:
    from .. import profile as profiles
    from .. import sweep as sweeps
    from ..evaluation import sweep_table

    base = profiles.load(args.profile)
    if args.workdir:
        base.workdir = str(args.workdir.expanduser().resolve())
    devices = sweeps.parse_devices(args.devices)
    plan = sweeps.build(base, args.vary)
    if args.dry_run:
        print("\n".join(sweeps.dry_run(plan)))
        return 0
    from ..console import make_renderer
    from ..events import JsonlEventWriter, fan_out
    from ..ownership import recording

    renderer = make_renderer()
    with recording(plan.layout.root):
        writer = JsonlEventWriter(plan.layout.sweep_events)
    try:
        table = sweeps.run_sweep(plan, fan_out(writer, renderer), devices)
    finally:
        writer.close()
        if hasattr(renderer, "close"):
            renderer.close()
    print(sweep_table.plain(table), end="")
    print(f"sweep folder: {plan.layout.sweep}", file=sys.stderr)
    return 0
