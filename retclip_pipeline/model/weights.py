"""Weights in and out: the reference's checkpoints (RET-CLIP's released flat state dict with
`module.` prefixes; Chinese-CLIP's `{"epoch", "step", "state_dict"}`) mapped onto our model,
and our model exported in the reference's layout.

Only the image tower's names differ: the reference uses OpenAI's ViT (`conv1`, `ln_pre`,
`transformer.resblocks.N.attn.in_proj_*`, `proj`), transformers its CLIP vision model. The
mapping is the one in transformers' Chinese-CLIP conversion script.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import UserError

# Reference name -> ours, inside the image tower (per block after `transformer.resblocks.N.`).
_TOWER = [
    ("conv1.weight", "embeddings.patch_embedding.weight"),
    ("class_embedding", "embeddings.class_embedding"),
    ("positional_embedding", "embeddings.position_embedding.weight"),
    ("ln_pre.weight", "pre_layrnorm.weight"),
    ("ln_pre.bias", "pre_layrnorm.bias"),
    ("ln_post.weight", "post_layernorm.weight"),
    ("ln_post.bias", "post_layernorm.bias"),
]
_BLOCK = [
    ("attn.out_proj.", "self_attn.out_proj."),
    ("ln_1.", "layer_norm1."),
    ("ln_2.", "layer_norm2."),
    ("mlp.c_fc.", "mlp.fc1."),
    ("mlp.c_proj.", "mlp.fc2."),
]
_HEADS = (
    "text_projection.",
    "text_projection_left.",
    "text_projection_right.",
    "global_feature_mapping.",
    "left_feature_mapping.",
    "right_feature_mapping.",
    "logit_scale",
)
_RESBLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+)$")


def _vision_to_ours(key: str, value: torch.Tensor, out: dict[str, torch.Tensor]) -> bool:
    if key == "proj":
        out["visual_projection.weight"] = value.t().contiguous()
        return True
    for theirs, ours in _TOWER:
        if key == theirs:
            out[f"visual.{ours}"] = value
            return True
    match = _RESBLOCK.match(key)
    if not match:
        return False
    layer, rest = match.groups()
    prefix = f"visual.encoder.layers.{layer}."
    if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
        kind = rest.rsplit("_", 1)[1]
        for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0), strict=True):
            out[f"{prefix}self_attn.{name}_proj.{kind}"] = part.contiguous()
        return True
    for theirs, ours in _BLOCK:
        if rest.startswith(theirs):
            out[prefix + ours + rest[len(theirs) :]] = value
            return True
    return False


def reference_to_ours(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map a reference state dict onto our names. Returns (mapped, keys we could not place)."""
    out: dict[str, torch.Tensor] = {}
    unplaced = []
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("visual."):
            if not _vision_to_ours(key[len("visual.") :], value, out):
                unplaced.append(key)
        elif key.startswith("bert."):
            if ".pooler." not in key and not key.endswith("position_ids"):
                out[key] = value
        elif key == "text_projection" and value.dim() == 2:
            continue  # Chinese-CLIP's own single text projection: RET-CLIP has three heads
        elif key.startswith(_HEADS):
            out[key] = value
        else:
            unplaced.append(key)
    return out, unplaced


def ours_to_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict in the reference's layout, with the `module.` prefix of its releases."""
    out: dict[str, torch.Tensor] = {}
    towers = {f"visual.{ours}": theirs for theirs, ours in _TOWER}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key == "visual_projection.weight":
            out["visual.proj"] = value.t().contiguous()
        elif key in towers:
            out[f"visual.{towers[key]}"] = value
        elif key.startswith("visual.encoder.layers."):
            layer, rest = key[len("visual.encoder.layers.") :].split(".", 1)
            base = f"visual.transformer.resblocks.{layer}."
            attn = re.match(r"^self_attn\.([qkv])_proj\.(weight|bias)$", rest)
            if attn:
                qkv.setdefault(f"{base}attn.in_proj_{attn.group(2)}", {})[attn.group(1)] = value
                continue
            for theirs, ours in _BLOCK:
                if rest.startswith(ours):
                    out[base + theirs + rest[len(ours) :]] = value
                    break
        else:
            out[key] = value
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return {f"module.{key}": value for key, value in out.items()}


def safe_load(path: Path):
    """A checkpoint file's contents, tensors and plain containers only (weights_only). A file
    that is damaged, not a checkpoint, or names other objects is refused in one line; torch's
    own message, which advises loading unsafely, is not passed on."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:  # "delete this one" is no advice for a folder
        raise UserError(f"{path} is a folder, not a checkpoint: give the .pt file") from None
    except Exception as exc:
        if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
            reason = (
                "it holds Python objects besides tensors and plain containers, which are not "
                "loaded because they could run code"
            )
        else:
            reason = f"it is damaged or not a checkpoint ({type(exc).__name__})"
    raise UserError(
        f"cannot read checkpoint {path}: {reason}; give a checkpoint this pipeline wrote or a "
        f"RET-CLIP release, or delete this one"
    )


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a released flat file or a `{"state_dict": ...}` checkpoint."""
    data = safe_load(path)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise UserError(f"{path} holds no state dict")
    return data


def load_reference(model: torch.nn.Module, path: Path) -> str:
    """Load a RET-CLIP release (every weight) or a Chinese-CLIP checkpoint (the towers and
    the patient temperature; the heads keep their initialisation), strictly: anything
    missing or left over ends in one error naming the keys. Returns what was loaded."""
    mapped, unplaced = reference_to_ours(read_checkpoint(path))
    full = any(key.startswith("global_feature_mapping") for key in mapped)
    ours = model.state_dict()
    expected = (
        set(ours) if full else {k for k in ours if not k.startswith(_HEADS)} | {"logit_scale"}
    )
    missing = sorted(expected - set(mapped))
    unexpected = sorted(set(mapped) - set(ours)) + unplaced
    wrong = sorted(k for k in set(mapped) & set(ours) if mapped[k].shape != ours[k].shape)
    if missing or unexpected or wrong:

        def some(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

        problems = [
            f"{len(missing)} missing ({some(missing)})" if missing else "",
            f"{len(unexpected)} unexpected ({some(unexpected)})" if unexpected else "",
            f"{len(wrong)} of another shape ({some(wrong)})" if wrong else "",
        ]
        raise UserError(
            f"{path} does not fit model.vision/model.text: "
            f"{'; '.join(p for p in problems if p)}: choose the towers it was "
            f"trained with"
        )
    model.load_state_dict(mapped, strict=False)
    return "RET-CLIP (all weights)" if full else "Chinese-CLIP (towers; heads initialised)"


def save_reference(model: torch.nn.Module, path: Path) -> None:
    """Our weights as a RET-CLIP-layout flat state dict, written atomically."""
    from ..atomic import atomic_open

    state = ours_to_reference({k: v.detach().cpu() for k, v in model.state_dict().items()})
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)
