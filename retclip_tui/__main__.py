"""retclip-tui [--profile P] [--workdir DIR] [--attach RUN_DIR]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="retclip-tui", description="The RET-CLIP wizard: from a token to a report."
    )
    parser.add_argument("--profile", type=Path, help="start from this profile")
    parser.add_argument("--workdir", type=Path, help="run directory (overrides the profile's)")
    parser.add_argument("--attach", type=Path, metavar="RUN_DIR", help="follow a run")
    args = parser.parse_args(argv)

    from retclip_pipeline.errors import UserError

    from .app import RetclipApp

    try:
        app = RetclipApp(profile=args.profile, workdir=args.workdir, attach=args.attach)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
