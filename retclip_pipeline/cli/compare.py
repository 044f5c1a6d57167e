"""`compare RUN_DIR...`: one table across runs' evaluations, printed and saved."""

from __future__ import annotations

from pathlib import Path

from . import PROG


def add(commands) -> None:
    parser = commands.add_parser(
        "compare",
        prog=f"{PROG} compare",
        help="one table across runs' evaluations",
        description="One table across runs' evaluations (for example the same data with "
        "different text towers).",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("comparison"),
        help="where to save the table (.md and .json added)",
    )
    parser.set_defaults(handler=compare)


def compare(args) -> int:
    from ..atomic import write_json, write_text
    from ..errors import UserError
    from ..evaluation.compare import markdown, plain, row

    rows = [row(run.expanduser().resolve()) for run in args.runs]
    print(plain(rows), end="")
    try:
        write_text(args.out.with_suffix(".md"), markdown(rows))
        write_json(args.out.with_suffix(".json"), rows)
    except OSError as exc:  # no such folder, a folder of that name, read-only, full
        raise UserError(
            f"cannot write {exc.filename or args.out} ({exc.strerror}): choose another --out"
        ) from None
    print(f"saved {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")
    return 0
