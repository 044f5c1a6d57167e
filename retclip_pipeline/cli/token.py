"""`token check` and `token login`: is the Hugging Face token there, valid, and allowed to
read the data set? Each outcome is told apart and says what to do. The token itself is never
printed, logged or written anywhere but the hub client's own store.

    python -m retclip_pipeline token check [--profile P] [--dataset ID]
    python -m retclip_pipeline token login          (hidden prompt, or the token on stdin)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from . import PROG

TOKENS_PAGE = "https://huggingface.co/settings/tokens"


@dataclass
class Finding:
    ok: bool
    message: str


UNREACHABLE = {
    "TransportError",
    "ConnectError",
    "ConnectTimeout",
    "TimeoutException",
    "OfflineModeIsEnabled",
    "ConnectionError",
}


def _unreachable(exc: Exception) -> bool:
    """A network failure, whichever HTTP library the hub client uses underneath."""
    chain = [e for e in (exc, exc.__cause__, exc.__context__) if e is not None]
    names = {cls.__name__ for e in chain for cls in type(e).__mro__}
    return bool(names & UNREACHABLE) or any(isinstance(e, OSError) for e in chain)


def check(token, dataset: str | None) -> list[Finding]:
    """Findings about the token (from hub.resolve_token) and, if named, the data set."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    from ..hub.env import hub_api

    api, findings = hub_api(), []
    endpoint = api.endpoint
    if token.value is None:
        findings.append(
            Finding(
                True,
                "no token: public data sets still work, but the hub allows "
                "about 3,000 file requests per 5 minutes without one (5,000 "
                f"with a free token from {TOKENS_PAGE})",
            )
        )
    else:
        try:
            who = api.whoami(token=token.value)
            findings.append(
                Finding(True, f"token from {token.origin} is valid (user {who.get('name', '?')})")
            )
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status == 401:
                findings.append(
                    Finding(
                        False,
                        f"the token from {token.origin} is invalid or "
                        f"revoked: create one at {TOKENS_PAGE}, then set it in "
                        f"{token.origin} or run `python -m retclip_pipeline "
                        f"token login`",
                    )
                )
                return findings
            raise
        except Exception as exc:
            if _unreachable(exc):
                return [
                    Finding(
                        False,
                        f"the hub is unreachable at {endpoint} "
                        f"({type(exc).__name__}): check the network; with "
                        f"HF_HUB_OFFLINE=1 only cached data is used",
                    )
                ]
            raise
    if not dataset:
        return findings
    try:
        info = api.dataset_info(dataset, token=token.value)
        gated = f", gated ({info.gated}) and your access is granted" if info.gated else ""
        findings.append(Finding(True, f"data set {dataset} is readable{gated}"))
    except GatedRepoError:
        findings.append(
            Finding(
                False,
                f"{dataset} is gated and this account has no access yet: "
                f"accept its terms at https://huggingface.co/datasets/{dataset}"
                if token.value
                else f"{dataset} is gated: log in (set HF_TOKEN or run `token "
                f"login`) and accept its terms at "
                f"https://huggingface.co/datasets/{dataset}",
            )
        )
    except RepositoryNotFoundError:
        findings.append(
            Finding(
                False,
                f"data set {dataset} was not found, or it is private and "
                f"{'this token has' if token.value else 'you have'} no access: "
                f"check hub.dataset",
            )
        )
    except Exception as exc:
        if _unreachable(exc):
            findings.append(
                Finding(
                    False,
                    f"the hub is unreachable at {endpoint} "
                    f"({type(exc).__name__}): check the network",
                )
            )
        else:
            raise
    return findings


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
    from ..hub.client import resolve_token

    profile = profiles.load(args.profile, check_files=False) if args.profile else profiles.Profile()
    dataset = args.dataset
    if dataset is None and args.profile:
        kind, where = profile.dataset_source()
        dataset = where if kind == "hub" else None
    findings = check(resolve_token(profile), dataset)
    for finding in findings:
        print(f"[{'ok  ' if finding.ok else 'FAIL'}] {finding.message}")
    return 0 if all(f.ok for f in findings) else 2


def store_token(token: str) -> None:
    """Through huggingface_hub's own store (validated by the hub first)."""
    from huggingface_hub import login

    if not token:
        raise UserError("no token given: paste one from " + TOKENS_PAGE)
    try:
        login(token=token, add_to_git_credential=False)
    except Exception as exc:  # an invalid token, or no network: say which, never the token
        raise UserError(
            f"the hub client refused the token ({type(exc).__name__}): check it at {TOKENS_PAGE}"
        ) from None


def _login() -> int:
    import getpass

    if sys.stdin.isatty():
        token = getpass.getpass("Hugging Face token (hidden): ").strip()
    else:
        token = sys.stdin.readline().strip()
    store_token(token)
    print("token stored by huggingface_hub; profiles find it through hub.use_stored_login")
    return 0
