"""The command line: `python -m retclip_pipeline [COMMAND] ...` (or `retclip`), one argparse
subcommand per module here. Without a command, `run` is meant: `--profile P` runs the
pipeline.

Exit codes: 0 done, 2 a user error (one line on stderr), 130 interrupted (rerun to resume),
1 a bug (with its traceback).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import StageInterrupted, UserError

PROG = "python -m retclip_pipeline"
# command -> its module here; each module's add(commands) registers its parser and handler
COMMANDS = {
    "run": "run",
    "compare": "compare",
    "embed": "use",
    "query": "use",
    "token": "token",
    "promote": "promote",
    "push": "push",
    "sweep": "sweep",
}


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog=PROG, description="The RET-CLIP pipeline, headless.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f"{__name__}.{module}").add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        argv.insert(0, "run")  # `--profile P`, and `--help`: the run command's options
    from ..quiet import no_library_bars

    no_library_bars()
    args = build_parser().parse_args(argv)
    try:
        _refuse_empty_paths(argv)
        return args.handler(args)
    except UserError as exc:
        from ..profile_values import redact

        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except (StageInterrupted, KeyboardInterrupt):
        print(
            "interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr
        )
        return 130


# Options that name a file or folder. Given empty (`--workdir "$RUN"` with RUN unset), argparse
# reads "" as Path("."): the run went into the current folder, and an empty --checkpoint was
# dropped for the profile's without a word.
PATH_OPTIONS = ("--profile", "--workdir", "--checkpoint", "--out", "--run", "--images", "--texts")
PATH_OPTIONS += ("--image",)


def _refuse_empty_paths(argv: list[str]) -> None:
    for number, arg in enumerate(argv):
        name, equals, value = arg.partition("=")
        if name not in PATH_OPTIONS:
            continue
        given = value if equals else (argv[number + 1] if number + 1 < len(argv) else None)
        if given is not None and not given.strip():
            raise UserError(f"{name} is given an empty path: name the file or folder it means")


def run_main() -> None:
    """Entry point: an interrupt that lands outside main()'s own handling still exits 130."""
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
