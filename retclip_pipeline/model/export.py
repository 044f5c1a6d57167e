"""A trained model as a folder that transformers loads back: the towers with save_pretrained
(vision/, text/ with its tokenizer), the heads as a state dict, a small config, and the same
weights in the reference's layout (retclip_state_dict.pt) for its own code."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..atomic import atomic_open
from .retclip import RetClip
from .weights import save_reference

HEADS = "heads.pt"
CONFIG = "retclip_config.json"


def write_export(model: RetClip, tokenizer, building: Path) -> None:
    """Write the export into the empty folder `building` (the caller moves it into place)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our events report the stage; no bars of its own
    model.visual.save_pretrained(building / "vision")
    model.bert.save_pretrained(building / "text")
    tokenizer.save_pretrained(building / "text")
    heads = {
        k: v.detach().cpu()
        for k, v in model.state_dict().items()
        if not k.startswith(("visual.", "bert."))
    }
    torch.save(heads, building / HEADS)
    config = {
        "embed_dim": model.visual_projection.out_features,
        "pad_token_id": model.pad_token_id,
        "format": 1,
    }
    with atomic_open(building / CONFIG, "w") as handle:
        json.dump(config, handle, indent=2)
    save_reference(model, building / "retclip_state_dict.pt")


def load_exported(folder: Path) -> tuple[RetClip, object]:
    """(model, tokenizer) from an export folder, with transformers' own loaders."""
    from transformers import AutoTokenizer

    from .build import load_text_tower, load_vision_tower

    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        embed_dim, pad_token_id = config["embed_dim"], config["pad_token_id"]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(
            f"{folder / CONFIG} is missing or damaged ({type(exc).__name__}: {exc}): copy the "
            f"export again from the run folder (logs/<name>/export/, written after training)"
        ) from None
    vision, _ = load_vision_tower(str(folder / "vision"))
    text = load_text_tower(str(folder / "text"))
    tokenizer = AutoTokenizer.from_pretrained(folder / "text")
    model = RetClip.from_towers(vision, text, embed_dim, pad_token_id)
    missing, unexpected = model.load_state_dict(
        torch.load(folder / HEADS, map_location="cpu", weights_only=True), strict=False
    )
    towers = ("visual.", "bert.")
    if unexpected or any(not key.startswith(towers) for key in missing):
        raise ValueError(
            f"{folder} does not hold a RET-CLIP export "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval(), tokenizer
