"""Access to the hub: a token checked against it (valid, whose, and may it read the data
set?) and stored in huggingface_hub's own store. Each outcome is told apart and says what to
do; a hub that cannot be reached is said as such (the token and the data set not checked),
never as a bad token. The token itself is never printed, logged or written anywhere but the
hub client's own store. Used by `token check`/`token login`, the preflight and the wizard."""

from __future__ import annotations

from ..checks import FAIL, OK, SKIP, Check
from ..errors import UserError
from .reach import OFFLINE_ENV, not_reached, said, unreachable

TOKENS_PAGE = "https://huggingface.co/settings/tokens"
STORED = "stored by huggingface_hub; later runs find it"


UNREACHABLE = {
    "TransportError",
    "ConnectError",
    "ConnectTimeout",
    "TimeoutException",
    "OfflineModeIsEnabled",
    "ConnectionError",
}


def network_failure(exc: BaseException) -> bool:
    """A network failure, whichever HTTP library the hub client uses underneath."""
    chain = [e for e in (exc, exc.__cause__, exc.__context__) if e is not None]
    names = {cls.__name__ for e in chain for cls in type(e).__mro__}
    return bool(names & UNREACHABLE) or any(isinstance(e, OSError) for e in chain)


def check(token, dataset: str | None, reason: str | None = None, probed: bool = False):
    """Checks (list[Check], named "token" and "hub.dataset") about the token (a hub.client.Token) and, if named, the data
    set. The hub is asked once first whether it answers at all (see reach.unreachable), unless
    `probed` (then `reason` is what the caller's probe found): when it does not, the token and
    the data set are said not checked, at once."""
    from huggingface_hub.errors import HfHubHTTPError

    from .env import hub_api

    api, findings = hub_api(), []
    endpoint = api.endpoint
    if not probed:
        reason = unreachable()
    if token.value is None:
        findings.append(
            Check(
                "token",
                OK,
                "no token: public data sets still work, but the hub allows "
                "about 3,000 file requests per 5 minutes without one (5,000 "
                f"with a free token from {TOKENS_PAGE})",
            )
        )
    elif reason is None:
        try:
            who = api.whoami(token=token.value)
            findings.append(
                Check(
                    "token", OK, f"token from {token.origin} is valid (user {who.get('name', '?')})"
                )
            )
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status != 401:
                raise
            findings.append(
                Check(
                    "token",
                    FAIL,
                    f"the token from {token.origin} is invalid or revoked: create one at "
                    f"{TOKENS_PAGE}, then set it in {token.origin} or run "
                    "`python -m retclip_pipeline token login`",
                )
            )
            return findings
        except Exception as exc:
            if not network_failure(exc):
                raise
            reason = said(exc)
    if token.value is not None and reason is not None:
        named = (
            token.origin if token.origin.startswith("the ") else f"the token from {token.origin}"
        )
        retry = (
            "unset HF_HUB_OFFLINE to check it"
            if reason == OFFLINE_ENV
            else f"check the network to {endpoint} and check again"
        )
        findings.append(
            Check(
                "token",
                SKIP,
                not_reached(reason, f"{named} was not checked (not known to be invalid); {retry}"),
            )
        )
    if dataset:
        findings.append(_dataset_finding(api, token, dataset, reason))
    return findings


def _dataset_finding(api, token, dataset: str, reason: str | None) -> Check:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    unchecked = (
        f"data set {dataset} not checked; it is checked when you convert or run --check online"
    )
    if reason is not None:
        return Check("hub.dataset", SKIP, not_reached(reason, unchecked))
    page = f"https://huggingface.co/datasets/{dataset}"
    try:
        info = api.dataset_info(dataset, token=token.value)
    except GatedRepoError:
        if token.value:
            message = f"{dataset} is gated and this account has no access yet: accept its terms at "
        else:
            message = f"{dataset} is gated: log in (set HF_TOKEN or run `token login`) and accept "
            message += "its terms at "
        return Check("hub.dataset", FAIL, message + page)
    except RepositoryNotFoundError:
        who = "this token has" if token.value else "you have"
        return Check(
            "hub.dataset",
            FAIL,
            f"data set {dataset} was not found, or it is private and {who} no access: "
            "check hub.dataset",
        )
    except Exception as exc:
        if not network_failure(exc):
            raise
        return Check("hub.dataset", SKIP, not_reached(said(exc), unchecked))
    gated = f", gated ({info.gated}) and your access is granted" if info.gated else ""
    return Check("hub.dataset", OK, f"data set {dataset} is readable{gated}")


def store_token(token: str) -> Check:
    """Into huggingface_hub's own store (as its login does: saved under the token's name,
    made the active one), checked by the hub first at the endpoint everything else asks;
    what was done, in one line. A hub that cannot be reached does not stop it: the token is
    stored `unchecked`, and the line says so. A token the hub refuses is a UserError (never
    naming the token), and nothing is stored."""
    from huggingface_hub.errors import HfHubHTTPError

    from .env import hub_api

    if not token:
        raise UserError("no token given: paste one from " + TOKENS_PAGE)
    if token.startswith("api_org"):
        raise UserError("an organization token cannot log in: use your own from " + TOKENS_PAGE)
    reason, name, user = unreachable(), "retclip-unchecked", None
    if reason is None:
        try:
            who = hub_api().whoami(token=token)
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise UserError(
                f"the hub refused the token (HTTP {status}: invalid or revoked), nothing "
                f"stored: create one at {TOKENS_PAGE}"
            ) from None
        except Exception as exc:
            if not network_failure(exc):
                raise
            reason = said(exc)
        else:
            user = who.get("name", "?")
            access = (who.get("auth") or {}).get("accessToken") or {}
            name = access.get("displayName") or f"retclip-{user}"
    _store(token, name)
    if reason is None:
        return Check("token", OK, f"{STORED} (checked with the hub: valid, user {user})")
    unchecked = not_reached(reason, "the token was not checked: check it once online")
    return Check("token", SKIP, f"{STORED}; {unchecked}")


def _store(token: str, name: str) -> None:
    """What huggingface_hub's login does after the hub's answer: the token saved under a
    name and made the active one (the file get_token reads)."""
    from huggingface_hub._login import _set_active_token
    from huggingface_hub.utils._auth import _save_token

    _save_token(token=token, token_name=name)
    _set_active_token(token_name=name, add_to_git_credential=False)
