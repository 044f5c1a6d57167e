"""A finished run's export to a hub model repo, as one commit: the export folder (vision/,
text/, heads.pt, retclip_config.json, retclip_state_dict.pt), the evaluation's figures under
figures/, its results, and the model card as README.md (hub/card.py). Through
huggingface_hub's HfApi: create_repo(exist_ok=True) then one create_commit. The token comes
as for every hub request (hub/client.py) and is never shown; errors a user can fix are one
line each. The command is cli/push.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..events import Emitter
from ..layout import RunLayout
from ..profile import Profile

TOKENS_PAGE = "https://huggingface.co/settings/tokens"
# What of the export goes up: everything but hidden files and half-written leftovers.
EXPORT_IGNORE = [".*", "*/.*", "*.tmp", "*.partial"]
FIGURE_PATTERNS = ["*.png"]
RESULTS = "evaluation_results.json"
CARD = "README.md"


@dataclass
class Upload:
    """What one push sends: repo path -> a local file or the bytes of a generated one."""

    repo_id: str
    profile: Profile  # the run's resolved profile: where the token comes from
    files: dict[str, Path | bytes] = field(default_factory=dict)

    def size(self) -> int:
        return sum(
            len(v) if isinstance(v, bytes) else v.stat().st_size for v in self.files.values()
        )


def check_repo_id(repo_id: str) -> str:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    problem = "" if repo_id.count("/") == 1 else "it must be USER/NAME (or ORG/NAME)"
    if not problem:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as exc:
            problem = str(exc).rstrip(".")
    if problem:
        raise UserError(
            f"--repo {repo_id!r} is not a valid model repo name: {problem}; letters, digits, "
            f"'-', '_' and '.' are allowed, at most 96 characters"
        )
    return repo_id


def finished_run(folder: Path) -> tuple[RunLayout, Profile, dict]:
    """(layout, resolved profile, evaluation results) of a finished run, or a UserError
    saying which part is missing and how to make it."""
    from .. import profile as profiles
    from ..lock import lock_holder
    from ..model.export import CONFIG
    from ..state import RunState

    layout = RunLayout.of_folder(folder)
    if not layout.resolved_profile.is_file():
        raise UserError(
            f"{folder} is not a run folder (no {layout.resolved_profile.name}): give a "
            f"finished run's folder with --run"
        )
    holder = lock_holder(layout.root)
    if holder:
        running = f" (pid {holder})" if holder > 0 else ""
        raise UserError(f"{folder} is running{running}: push it once the run has finished")
    profile = profiles.load(layout.resolved_profile, check_files=False)
    profile.workdir = str(layout.root)
    state = RunState.load(layout.root)
    export_files = (layout.export / CONFIG, layout.export / "retclip_state_dict.pt")
    if state.status("train") != "done" or not all(p.is_file() for p in export_files):
        raise UserError(
            f"{folder} has no finished training export ({layout.export}): finish the run "
            f"(rerun its profile: python -m retclip_pipeline --profile {layout.resolved_profile})"
        )
    if state.status("evaluate") != "done" or not layout.results.is_file():
        raise UserError(
            f"{folder} has no evaluation ({layout.results}): run its evaluate stage first "
            f"(python -m retclip_pipeline --profile {layout.resolved_profile} --stages evaluate)"
        )
    try:
        results = json.loads(layout.results.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{layout.results} cannot be read ({type(exc).__name__}): rerun the evaluate stage"
        ) from None
    if not isinstance(results, dict):
        raise UserError(
            f"{layout.results} holds {type(results).__name__} where the evaluation's results "
            f"(a JSON object) should be: rerun the evaluate stage (python -m retclip_pipeline "
            f"--profile {layout.resolved_profile} --stages evaluate)"
        )
    return layout, profile, results


def _files(folder: Path, allow: list[str] | None, ignore: list[str] | None) -> list[str]:
    """Relative POSIX paths of the files under `folder` that the patterns let through, with
    huggingface_hub's own filter (the one upload_folder uses)."""
    from huggingface_hub.utils import filter_repo_objects

    if not folder.is_dir():
        return []
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(found, allow_patterns=allow, ignore_patterns=ignore))


def prepare(folder: Path, repo_id: str, license: str = "other") -> Upload:
    """Everything one push would send, the card built; nothing is sent."""
    from . import card
    from .licenses import check_license

    license = check_license(license)
    layout, profile, results = finished_run(folder)
    upload = Upload(check_repo_id(repo_id), profile)
    for name in _files(layout.export, None, EXPORT_IGNORE):
        upload.files[name] = layout.export / name
    figures = _files(layout.evaluation, FIGURE_PATTERNS, [".*", "*/*"])
    for name in figures:
        upload.files[f"{card.FIGURES}/{name}"] = layout.evaluation / name
    public = json.dumps(card.public_results(results), indent=2, ensure_ascii=False)
    upload.files[RESULTS] = public.encode("utf-8")
    model_card = card.build(layout, profile, results, repo_id, figures, license)
    upload.files[CARD] = str(model_card).encode("utf-8")
    return upload


def _refused(exc: Exception, repo_id: str, origin: str) -> UserError | None:
    """The one line for a hub answer a user can act on; None for anything else."""
    from huggingface_hub.errors import HfHubHTTPError

    from .retry import classify

    if isinstance(exc, ValueError) and "Invalid metadata in README.md" in str(exc):
        return UserError(f"the hub refused the model card's metadata: {exc}")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:
            return UserError(
                f"the hub refused the token from {origin} (401: invalid or revoked): create "
                f"a token with write access at {TOKENS_PAGE}, then set it in {origin} or run "
                f"`python -m retclip_pipeline token login`"
            )
        if status == 403:
            return UserError(
                f"the token from {origin} may not write to {repo_id} (403): use a token with "
                f"write access to that namespace ({TOKENS_PAGE}), or push to your own "
                f"USER/NAME"
            )
        if status in (400, 422):
            return UserError(
                f"the hub refused {repo_id!r} (HTTP {status}): choose another --repo name"
            )
        if status == 404:
            return UserError(
                f"{repo_id} was not found after creating it (404): check that the token "
                f"from {origin} may write to that namespace"
            )
    reason = classify(exc)
    if reason is not None:
        from .env import hub_endpoint

        endpoint = hub_endpoint() or "https://huggingface.co"
        return UserError(
            f"the hub at {endpoint} could not be reached or failed ({reason[0]}): check the "
            f"network and push again (nothing is committed until the whole upload is)"
        )
    return None


def push(upload: Upload, emit: Emitter, private: bool = False) -> str:
    """Create the repo if need be and send the upload as one commit; returns its URL."""
    from huggingface_hub import CommitOperationAdd

    from .client import resolve_token
    from .env import hub_api, offline

    profile = upload.profile
    token = resolve_token(profile)
    if token.value is None:
        raise UserError(
            f"no Hugging Face token: pushing needs one with write access; set "
            f"{profile.hub.token_env} or run `python -m retclip_pipeline token login` "
            f"({TOKENS_PAGE})"
        )
    if offline():
        raise UserError("HF_HUB_OFFLINE is set: unset it to push to the hub")
    api, repo_id = hub_api(), upload.repo_id
    try:
        visibility = "private" if private else "the namespace's default visibility"
        emit.log(f"creating {repo_id} ({visibility}) if it is new")
        # not private: None, so that an organisation that makes repos private keeps doing so
        api.create_repo(
            repo_id, token=token.value, private=True if private else None, exist_ok=True
        )
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=source)
            for name, source in sorted(upload.files.items())
        ]
        emit.progress("upload", 0, len(operations), "files")
        info = api.create_commit(
            repo_id,
            operations,
            commit_message="Upload RET-CLIP model from the retclip pipeline",
            token=token.value,
        )
        emit.progress("upload", len(operations), len(operations), "files")
    except Exception as exc:
        error = _refused(exc, repo_id, token.origin)
        if error is None:
            raise
        raise error from None
    return str(getattr(info, "commit_url", "") or f"{api.endpoint}/{repo_id}")
