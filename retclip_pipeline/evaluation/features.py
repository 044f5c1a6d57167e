"""Features of a split under a checkpoint: patient, left and right image features, the raw
single-eye feature, and the three text features, with ids and labels, saved as .pt files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..profile import Profile


def checkpoint_path(profile: Profile, workdir: Path, override: str | None = None) -> str:
    """The checkpoint to evaluate: a path, or "init" for the untrained starting weights."""
    from ..train import run_dir

    choice = override or profile.eval.checkpoint
    if choice == "init":
        return "init"
    if choice:
        return str(profile.resolve(choice))
    return str(run_dir(profile, workdir) / "checkpoints" / "epoch_latest.pt")


def load_model(profile: Profile, checkpoint: str):
    """(model, tokenizer, a description) with the checkpoint's weights."""
    from ..model.build import ModelSpec, build
    from ..model.weights import load_reference
    from ..training.checkpoint import load

    spec = ModelSpec(
        profile.model.vision,
        profile.model.text,
        profile.model.context_length,
        profile.data.image_size,
    )
    torch.manual_seed(profile.train.seed)
    model, tokenizer = build(spec)
    if checkpoint == "init":
        if profile.model.init:
            load_reference(model, profile.resolve(profile.model.init))
        return model.eval(), tokenizer, "untrained starting weights (zero-shot baseline)"
    path = Path(checkpoint)
    if not path.exists():
        raise UserError(
            f"no checkpoint at {path}: run the train stage, or set "
            f'eval.checkpoint ("init" evaluates the untrained model)'
        )
    payload = load(path)
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if isinstance(state, dict) and "visual_projection.weight" in state:
        problems = model.load_state_dict(state, strict=False)
        if problems.missing_keys or problems.unexpected_keys:
            raise UserError(
                f"{path} does not fit model.vision/model.text: missing "
                f"{problems.missing_keys[:3]}, unexpected "
                f"{problems.unexpected_keys[:3]}"
            )
        epoch = payload.get("epoch")
        return model.eval(), tokenizer, f"{path} (epoch {epoch}, step {payload.get('step')})"
    return model.eval(), tokenizer, f"{path} ({load_reference(model, path)})"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise UserError(f"{path} is missing: run the convert stage first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@torch.no_grad()
def image_features(
    model, workdir: Path, split: str, size: int, batch_size: int, device, dtype, on_progress=None
) -> dict[str, Any]:
    from ..lmdb_store import LmdbReader
    from ..training.data import decode, image_transform, normalize

    images = _read_jsonl(workdir / "data" / f"{split}_images.jsonl")
    reader = LmdbReader(workdir / "lmdb" / split)
    transform = image_transform(size)
    out: dict[str, list] = {"patient": [], "left": [], "right": [], "eye": []}
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pairs = [reader.images_b64(record["image_id"]) for record in chunk]
        if any(pair is None for pair in pairs):
            raise UserError(
                f"the {split} LMDB lacks images the conversion listed: rerun with "
                f"--restart --stages lmdb"
            )
        left = torch.stack([transform(decode(l_b64)) for l_b64, _ in pairs])
        same = all(l_b64 == r_b64 for l_b64, r_b64 in pairs)
        right = None if same else torch.stack([transform(decode(r_b64)) for _, r_b64 in pairs])
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            left = normalize(left.to(device))
            right = None if right is None else normalize(right.to(device))
            eye = model.encode_eye(left)
            patient, mapped_left, mapped_right = model.encode_image(left, right)
        for name, value in (
            ("patient", patient),
            ("left", mapped_left),
            ("right", mapped_right),
            ("eye", eye),
        ):
            out[name].append(value.float().cpu())
        if on_progress:
            on_progress(min(start + batch_size, len(images)), len(images))
    reader.close()
    return {
        "ids": [r["image_id"] for r in images],
        "labels": [r.get("label") for r in images],
        **{k: torch.cat(v) for k, v in out.items()},
    }


@torch.no_grad()
def text_features(
    model, tokenizer, texts: list[str], context: int, batch_size: int, device, dtype
) -> dict[str, torch.Tensor]:
    from ..model.tokenizer import encode_texts

    out: dict[str, list] = {"patient": [], "left": [], "right": []}
    for start in range(0, len(texts), batch_size):
        ids, mask = encode_texts(tokenizer, texts[start : start + batch_size], context)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            heads = model.encode_text(ids.to(device), mask.to(device))
        for name, value in zip(out, heads, strict=True):
            out[name].append(value.float().cpu())
    return {k: torch.cat(v) if v else torch.zeros(0) for k, v in out.items()}


def split_texts(workdir: Path, split: str) -> list[dict[str, Any]]:
    return _read_jsonl(workdir / "data" / f"{split}_texts.jsonl")
