"""Using a trained model from Python (notebooks, downstream work):

    from retclip_pipeline import api
    run = api.load("runs/full")
    features = run.encode_images(["a.jpg", "b.png"])   # patient-level, normalised
    texts = run.encode_texts(["optic disc swelling"])
    run.classify(["a.jpg"])                           # [(label, probability), ...] per image
    pair = run.encode_pair("0_left.jpg", "0_right.jpg") # paired eyes: .patient, .left, .right

Images go through the conversion's normalisation (RGB, border crop, square, the run's size)
and the evaluation transform, as in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .layout import RunLayout

TEXT_HEADS = ("patient", "left", "right")  # the order of the model's text features


@dataclass
class PairFeatures:
    """Normalised features of patients' two eyes, one row a patient: `patient` from both
    eyes (the patient head), `left` and `right` from each eye's own head."""

    patient: Any
    left: Any
    right: Any


@dataclass
class Run:
    folder: Path
    profile: Any
    model: Any
    tokenizer: Any
    device: Any
    description: str
    _classes: tuple | None = field(default=None, repr=False)

    def _pixels(self, images: list) -> Any:
        import numpy as np
        import torch
        from PIL import Image

        from .data.images import BadImage, normalise
        from .model.build import image_size_of
        from .training.data import image_transform, normalize

        data = self.profile.data
        size = image_size_of(self.profile.model_spec())
        transform = image_transform(size)
        tensors = []
        for image in images:
            if isinstance(image, Image.Image):
                import io

                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                raw = buffer.getvalue()
            else:
                try:
                    raw = Path(image).read_bytes()
                except OSError as exc:
                    raise UserError(f"cannot read image {image}: {exc.strerror}") from None
            try:
                picture = normalise(raw, data.image_size, data.crop_border)
            except BadImage as exc:
                raise UserError(f"{image} is not a readable image ({exc})") from None
            array = torch.from_numpy(np.array(picture)).permute(2, 0, 1)
            tensors.append(transform(array))
        return normalize(torch.stack(tensors).to(self.device))

    def encode_images(self, images: list, eye: bool = False) -> Any:
        """Normalised features: patient-level (the image as both eyes), or with `eye` the
        raw single-eye tower output."""
        import torch
        from torch.nn import functional as F

        out = []
        with torch.no_grad():
            for start in range(0, len(images), 64):
                pixels = self._pixels(images[start : start + 64])
                value = self.model.encode_eye(pixels) if eye else self.model.encode_image(pixels)[0]
                out.append(F.normalize(value.float(), dim=-1).cpu())
        return torch.cat(out)

    def encode_pair(self, left: Any, right: Any) -> PairFeatures:
        """The patient embedding of a left and a right eye image (paths or PIL images; or
        two lists of equal length, one entry a patient) and each eye's own embedding, as
        training encoded the pairs: each eye through the image tower, then the heads."""
        import torch
        from torch.nn import functional as F

        lefts, rights = (x if isinstance(x, (list, tuple)) else [x] for x in (left, right))
        if len(lefts) != len(rights):
            raise UserError(
                f"encode_pair: {len(lefts)} left and {len(rights)} right images: give one "
                f"of each a patient"
            )
        out: dict[str, list] = {"patient": [], "left": [], "right": []}
        with torch.no_grad():
            for start in range(0, len(lefts), 64):
                left_raw = self.model.encode_eye(self._pixels(lefts[start : start + 64]))
                right_raw = self.model.encode_eye(self._pixels(rights[start : start + 64]))
                mapped = self.model.map_eyes(left_raw, right_raw)
                for name, value in zip(out, mapped, strict=True):
                    out[name].append(F.normalize(value.float(), dim=-1).cpu())
        return PairFeatures(*(torch.cat(out[name]) for name in out))

    def encode_texts(self, texts: list[str], head: str = "patient") -> Any:
        """Normalised text features from the patient head, or the "left" or "right" eye's
        (to match `encode_pair`'s per-eye features)."""
        import torch
        from torch.nn import functional as F

        from .model.tokenizer import encode_texts

        if head not in TEXT_HEADS:
            raise UserError(
                f"encode_texts: head {head!r} is not one of the text heads: choose "
                f"{', '.join(map(repr, TEXT_HEADS))}"
            )
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), 256):
                ids, mask = encode_texts(
                    self.tokenizer, texts[start : start + 256], self.profile.model.context_length
                )
                heads = self.model.encode_text(ids.to(self.device), mask.to(self.device))
                value = heads[TEXT_HEADS.index(head)]
                out.append(F.normalize(value.float(), dim=-1).cpu())
        return torch.cat(out)

    def labels(self) -> list[str]:
        """The run's class labels (its texts' patient-level ones); empty when it has none."""
        from .evaluation.features import split_texts

        return sorted(
            {
                t["label"]
                for split in ("train", "test")
                for t in _texts(self.folder, split, split_texts)
                if t.get("label")
            }
        )

    def classes(self) -> tuple[list[str], Any]:
        """The run's classes and their zero-shot embeddings (from the profile's templates)."""
        if self._classes is None:
            from .evaluation.metrics import class_embeddings
            from .evaluation.zero_shot import template_prompts

            labels = self.labels()
            if not labels:
                raise UserError(
                    f"{self.folder} has no class labels (its profile's data.label_column is "
                    f"empty): classify needs them"
                )
            prompts, owners, _ = template_prompts(labels, self.profile.eval)
            self._classes = (
                labels,
                class_embeddings(self.encode_texts(prompts), owners, len(labels)),
            )
        return self._classes

    def classify(self, images: list, top: int = 3) -> list[list[tuple[str, float]]]:
        import torch

        labels, embeddings = self.classes()
        scores = self.encode_images(images) @ embeddings.t()
        probs = torch.softmax(scores * float(self.model.scales()[0].detach().cpu()), dim=1)
        ranked = probs.topk(min(top, len(labels)), dim=1)
        return [
            [(labels[i], round(float(p), 4)) for p, i in zip(row_p, row_i, strict=True)]
            for row_p, row_i in zip(ranked.values, ranked.indices, strict=True)
        ]


def _texts(folder: Path, split: str, reader) -> list[dict[str, Any]]:
    try:
        return reader(folder, split)
    except UserError:
        return []


def load(run_dir: str | Path, checkpoint: str | None = None) -> Run:
    """A run directory's model ready to encode: the checkpoint its evaluation reads (the
    run's eval.checkpoint if set, else the training's best.pt, else its latest), or
    `checkpoint` (a path, relative to the run folder; "init": the starting weights)."""
    from . import profile as profiles
    from .evaluation.features import checkpoint_path, load_model
    from .training.device import resolve_device

    folder = Path(run_dir).expanduser().resolve()
    resolved = RunLayout.of_folder(folder).resolved_profile
    if not resolved.exists():
        raise UserError(f"{folder} is not a run directory (no profile.resolved.toml)")
    profile = profiles.load(resolved, check_files=False)
    profile.workdir = str(folder)
    model, tokenizer, description = load_model(
        profile, checkpoint_path(profile, folder, checkpoint)
    )

    class Quiet:
        def warn(self, message: str) -> None:
            pass

    device = resolve_device(profile.train.device, Quiet())
    return Run(folder, profile, model.to(device), tokenizer, device, description)
