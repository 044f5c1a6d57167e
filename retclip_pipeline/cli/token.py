"""`token check` and `token login`: is the Hugging Face token there, valid, and allowed to
read the data set? The questions are hub.access's (shared with the preflight and the wizard);
this module reads the arguments and prints the answers. The token itself is never printed,
logged or written anywhere but the hub client's own store.

    python -m retclip_pipeline token check [--profile P] [--dataset ID]
    python -m retclip_pipeline token login          (hidden prompt, or the token on stdin)
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import PROG


def add(commands) -> None:
    parser = commands.add_parser(
        "token", prog=f"{PROG} token", help="check or store the Hugging Face token"
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    checking = verbs.add_parser("check", help="validate the token and the data set access")
    checking.add_argument(
        "--profile", type=Path, help="profile naming the data set and where the token comes from"
    )
    checking.add_argument("--dataset", help="data set id (default: the profile's hub.dataset)")
    verbs.add_parser("login", help="store a token with huggingface_hub (hidden prompt or stdin)")
    parser.set_defaults(handler=_token)


def _token(args) -> int:
    if args.verb == "login":
        return _login()
    from .. import profile as profiles
    from ..checks import passed, render
    from ..hub.access import check
    from ..hub.client import resolve_token

    profile = profiles.load(args.profile, check_files=False) if args.profile else profiles.Profile()
    dataset = args.dataset
    if dataset is None and args.profile:
        kind, where = profile.dataset_source()
        dataset = where if kind == "hub" else None
    findings = check(resolve_token(profile), dataset)
    print(render(findings, named=False))  # each detail names the token or the data set
    return 0 if passed(findings) else 2


def _login() -> int:
    import getpass

    from ..hub.access import store_token

    if sys.stdin.isatty():
        token = getpass.getpass("Hugging Face token (hidden): ").strip()
    else:
        token = sys.stdin.readline().strip()
    print(store_token(token).detail + "; profiles find it through hub.use_stored_login")
    return 0
