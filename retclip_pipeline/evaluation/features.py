"""Features of a split under a checkpoint: patient, left and right image features, the raw
single-eye feature, and the three text features, with ids and labels, saved as .pt files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..layout import RunLayout
from ..profile import Profile
from .choice import checkpoint_path  # noqa: F401 - read through this module too


def load_model(profile: Profile, checkpoint: str):
    """(model, tokenizer, a description) with the checkpoint's weights."""
    from ..model.build import build
    from ..model.weights import load_reference
    from ..training.checkpoint import load

    spec = profile.model_spec()
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
        ours = model.state_dict()
        missing = sorted(set(ours) - set(state))
        unexpected = sorted(set(state) - set(ours))
        wrong = sorted(k for k in set(ours) & set(state) if ours[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise UserError(
                f"{path} does not fit model.vision/model.text: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}, of another shape {wrong[:3]}: "
                f"evaluate it with the profile it was trained with"
            )
        model.load_state_dict(state)
        epoch, best = payload.get("epoch"), payload.get("best")
        shown = _shown(path, profile.workdir_path())
        if isinstance(best, dict) and best.get("epoch") == epoch:  # best.pt, or the best epoch
            from ..training.validation import best_note

            return model.eval(), tokenizer, f"{shown} ({best_note(best)}, step {payload['step']})"
        return model.eval(), tokenizer, f"{shown} (epoch {epoch}, step {payload.get('step')})"
    return model.eval(), tokenizer, f"{path} ({load_reference(model, path)})"


def _shown(path: Path, workdir: Path) -> str:
    """A checkpoint of the run as a path relative to its run folder, which may move; any
    other as it was given."""
    try:
        return path.resolve().relative_to(workdir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise UserError(f"{path} is missing: run the convert stage first")
    from ..data.converted import read_records

    return read_records(path)


class SplitImages:
    """The images of a split by position in data/<split>_images.jsonl, as uint8 tensors."""

    def __init__(self, split_dir: Path, ids: list, transform):
        from ..data.lmdb_io import LmdbReader

        self.reader, self.ids, self.transform = LmdbReader(split_dir), ids, transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        from ..training.data import decode

        pair = self.reader.images_b64(self.ids[index])
        if pair is None:
            raise UserError(
                f"{self.reader.split_dir} lacks image {self.ids[index]} that the "
                f"conversion listed: rerun with --restart --stages lmdb"
            )
        left = self.transform(decode(pair[0]))
        same = pair[0] == pair[1]
        return left, left if same else self.transform(decode(pair[1])), same


@torch.no_grad()
def image_features(
    model,
    workdir: Path,
    split: str,
    size: int,
    batch_size: int,
    device,
    dtype,
    on_progress=None,
    workers: int = 2,
) -> dict[str, Any]:
    """Each image's raw single-eye feature (`eye`, the left eye) and the three mapped ones;
    decoding runs in worker processes so that the model, not the loader, sets the pace."""
    from ..training.data import image_transform, normalize

    layout = RunLayout.of_folder(workdir)  # data/ may be a shared folder (data_dir)
    images = _read_jsonl(layout.images_jsonl(split))
    dataset = SplitImages(
        layout.lmdb_split(split), [r["image_id"] for r in images], image_transform(size)
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda"
    )
    out: dict[str, list] = {"patient": [], "left": [], "right": [], "eye": []}
    done = 0
    for left, right, same in loader:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            left_raw = model.encode_eye(normalize(left.to(device, non_blocking=True)))
            right_raw = left_raw
            if not bool(same.all()):
                right_raw = model.encode_eye(normalize(right.to(device, non_blocking=True)))
            patient, mapped_left, mapped_right = model.map_eyes(left_raw, right_raw)
        for name, value in (
            ("patient", patient),
            ("left", mapped_left),
            ("right", mapped_right),
            ("eye", left_raw),
        ):
            out[name].append(value.float().cpu())
        done += len(left)
        if on_progress:
            on_progress(done, len(images))
    dataset.reader.close()
    eye_labels = {
        f"labels_{side}": [r.get(f"label_{side}") for r in images]
        for side in ("left", "right")
        if any(f"label_{side}" in r for r in images)
    }
    return {
        "ids": [r["image_id"] for r in images],
        "labels": [r.get("label") for r in images],
        **eye_labels,
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
    return _read_jsonl(RunLayout.of_folder(workdir).texts_jsonl(split))


def split_images(workdir: Path, split: str) -> list[dict[str, Any]]:
    return _read_jsonl(RunLayout.of_folder(workdir).images_jsonl(split))
