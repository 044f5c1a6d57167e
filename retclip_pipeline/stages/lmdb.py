"""The lmdb stage: data/<split>_imgs.tsv and _texts.jsonl -> lmdb/<split>/{imgs,pairs}
(and eye_texts for paired data), each environment built resumably, then verified."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..data import lmdb_io
from ..data.sampling import split_plan
from ..errors import UserError
from ..layout import RunLayout
from ..profile import Profile
from ..stage import Stage, StageContext


def env_names(profile: Profile) -> tuple[str, ...]:
    return ("imgs", "pairs", "eye_texts") if profile.data.eyes == "paired" else ("imgs", "pairs")


def _outputs(profile: Profile, workdir: Path) -> list[Path]:
    layout = RunLayout.of(profile, workdir)
    return [
        layout.lmdb_env(name, env) / "data.mdb"
        for name, _, _ in split_plan(profile)
        for env in env_names(profile)
    ]


def _inputs(profile: Profile, workdir: Path) -> list[str]:
    layout = RunLayout.of(profile, workdir)
    return [
        str(path)
        for name, _, _ in split_plan(profile)
        for path in (layout.imgs_tsv(name), layout.texts_jsonl(name))
    ]


def run(ctx: StageContext) -> dict[str, Any]:
    profile = ctx.profile
    layout = RunLayout.of(profile, ctx.workdir)
    summary: dict[str, Any] = {}
    for split, _, _ in split_plan(profile):
        for needed in (layout.imgs_tsv(split), layout.texts_jsonl(split)):
            if not needed.exists():
                raise UserError(f"{needed} is missing: run the convert stage first")
        sources = {env: lmdb_io.records(env, layout.data, split)[1] for env in env_names(profile)}
        total = sum(p.stat().st_size for p in sources.values())
        offset, task = 0, f"{split} lmdb"
        ctx.emit.progress(task, 0, total, "bytes")
        for env in env_names(profile):
            records, source = lmdb_io.records(env, layout.data, split)
            size = source.stat().st_size
            dest, building = layout.lmdb_env(split, env), layout.lmdb_building(split, env)
            if (dest / "data.mdb").exists() and not building.exists():
                offset += size  # finished before an interruption of this stage
                ctx.emit.progress(task, offset, total, "bytes")
                continue
            report = functools.partial(_report_bytes, ctx, task, offset, total)
            lmdb_io.build_env(dest, building, records, lmdb_io.COUNT_KEYS[env], size, report)
            offset += size
        summary.update(
            lmdb_io.verify(layout.lmdb_split(split), profile.data.eyes == "paired", split)
        )
        ctx.emit.log(
            f"{split}: {summary[f'{split}_images']} images and "
            f"{summary[f'{split}_pairs']} pairs in lmdb/{split}, verified"
        )
    return summary


def _report_bytes(ctx: StageContext, task: str, base: int, total: int, done: int) -> None:
    ctx.emit.progress(task, base + done, total, "bytes")


STAGE = Stage(
    name="lmdb",
    description="TSV/JSONL -> LMDB",
    sections=(),
    needs=("convert",),
    run=run,
    inputs=_inputs,
    outputs=_outputs,
    scratch=lambda profile, workdir: [RunLayout.of(profile, workdir).lmdb],
)
