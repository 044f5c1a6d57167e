"""The preflight (--check): profile, files, CSV columns, data set, token, work directory and
disk space, as a checklist that passes only if every item does."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .profile import Profile
from .prompts import check_columns, read_prompts

# Bytes per pixel of a 95-quality fundus JPEG, measured on the demo and real-like images.
JPEG_BYTES_PER_PIXEL = 0.35


@dataclass
class CheckItem:
    name: str
    ok: bool
    detail: str


def estimate_output_bytes(profile: Profile, images: int) -> int:
    """TSV and LMDB hold each image base64-encoded (4/3), twice (both eyes), and the LMDB
    build keeps a working copy until its compacted copy is done."""
    jpeg = profile.data.image_size**2 * JPEG_BYTES_PER_PIXEL
    return int(images * jpeg * 4 / 3 * 2 * 3 * 1.2)


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def run_checks(profile: Profile, workdir: Path) -> list[CheckItem]:
    from .convert import plan_counts, split_plan

    items = [CheckItem("profile", True, str(profile.source or "built in"))]
    csv_ok = True
    for name, csv, _ in split_plan(profile):
        path = profile.resolve(csv)
        try:
            check_columns(path, profile.data)
            table = read_prompts(path, profile.data, None)
            items.append(
                CheckItem(
                    f"{name} CSV",
                    True,
                    f"{path}: {table.rows_read} rows, {len(table.by_index())} distinct images",
                )
            )
        except UserError as exc:
            csv_ok = False
            items.append(CheckItem(f"{name} CSV", False, str(exc)))
    items += dataset_checks(profile)
    items += _token_check(profile)
    try:
        parent = _existing_parent(workdir)
        writable = _writable(parent)
        items.append(
            CheckItem(
                "work directory",
                writable,
                f"{workdir}" + ("" if writable else f": {parent} is not writable"),
            )
        )
        if csv_ok:
            counts = plan_counts(profile)
            images = sum(split["sampled"] for split in counts.values())
            need = estimate_output_bytes(profile, images)
            free = shutil.disk_usage(parent).free
            items.append(
                CheckItem(
                    "disk space",
                    free > need,
                    f"about {need / 1e9:.2f} GB needed for {images} images, "
                    f"{free / 1e9:.1f} GB free at {parent}",
                )
            )
    except OSError as exc:
        items.append(CheckItem("work directory", False, f"{workdir}: {exc}"))
    if csv_ok:
        items.append(_train_check(profile))
    return items


def _train_check(profile: Profile) -> CheckItem:
    """Whether the model fits the device at the chosen batch size, and how long it takes."""
    from .convert import train_pairs
    from .estimate import estimate

    try:
        result = estimate(profile, train_pairs(profile))
    except UserError as exc:
        return CheckItem("training estimate", False, str(exc))
    return CheckItem(
        "training estimate", result.fits, "; ".join(result.lines(profile.train.batch_size))
    )


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK)


def dataset_checks(profile: Profile) -> list[CheckItem]:
    from .convert import split_plan
    from .hub import open_splits

    kind, where = profile.dataset_source()
    if kind == "hub":
        return []  # the token check below reaches the hub for it
    try:
        sources = open_splits(profile, [split for _, _, split in split_plan(profile)])
    except UserError as exc:
        return [CheckItem("data set", False, str(exc))]
    items = []
    for name, csv, split in split_plan(profile):
        try:
            source = sources[split]
            detail = f"{where} [{split}]: {len(source)} rows"
            if source.label_names:
                detail += f", {len(source.label_names)} classes"
            table = read_prompts(profile.resolve(csv), profile.data, len(source))
            items.append(
                CheckItem(
                    f"data set {name}",
                    True,
                    detail + f"; CSV indices in range ({len(table.rows)} rows usable)",
                )
            )
        except UserError as exc:
            items.append(CheckItem(f"data set {name}", False, str(exc)))
    return items


def _token_check(profile: Profile) -> list[CheckItem]:
    """The token and, for a hub data set, access to it: the checks of `token check`."""
    from .hub import resolve_token
    from .token_cli import check

    kind, where = profile.dataset_source()
    if kind == "local":
        return [CheckItem("token", True, "not needed for a local data set")]
    findings = check(resolve_token(profile), where)
    names = ["token", "data set"]
    return [CheckItem(names[min(n, 1)], f.ok, f.message) for n, f in enumerate(findings)]
