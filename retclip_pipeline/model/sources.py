"""Where a tower comes from: preset names, hub ids or local folders; its config; whether its
weights can be had (a folder, the hub cache, or the hub) without downloading them; and what
to run to fetch them ahead for an offline machine."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..hub.env import OFFLINE_ENV, offline_reason
from ..units import size

# Short names a profile may use for `model.vision`; anything else is a hub id or a folder
# holding a CLIP-family checkpoint (a full dual encoder, or a vision model alone).
VISION_PRESETS = {
    "vit-b-16": "OFA-Sys/chinese-clip-vit-base-patch16",
    "vit-l-14": "OFA-Sys/chinese-clip-vit-large-patch14",
    "openai-vit-b-16": "openai/clip-vit-base-patch16",
}
TINY = "tiny"
VISION_TYPES = ("chinese_clip", "clip", "chinese_clip_vision_model", "clip_vision_model")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def vision_source(name: str) -> str:
    return VISION_PRESETS.get(name, name)


def source_of(name: str, kind: str) -> str:
    from .tokenizer import text_source

    return vision_source(name) if kind == "vision" else text_source(name)


def is_local(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def hub_ids(names: list[str]) -> list[str]:
    """The hub repositories behind tower names (presets resolved; folders and tiny left out)."""
    from .tokenizer import text_source

    ids = []
    for name in names:
        source = VISION_PRESETS.get(name, text_source(name))
        if name != TINY and not is_local(source) and source not in ids:
            ids.append(source)
    return ids


def fetch_advice(names: list[str]) -> str:
    """What to do when a tower cannot be had: offline, the commands that fetch it ahead."""
    ids = hub_ids(names)
    reason = offline_reason()
    if reason and ids:
        commands = "; ".join(f"`hf download {repo}`" for repo in ids)
        if reason == OFFLINE_ENV:
            return (
                f"offline ({OFFLINE_ENV}): only cached models load: fetch them ahead with "
                f"{commands}, or unset HF_HUB_OFFLINE"
            )
        return (
            f"hub not reachable ({reason}): only cached models load: connect and retry, or "
            f"fetch them ahead on a connected machine with {commands}"
        )
    return "check the names (a preset, a hub id or a local folder), your connection and token"


def load_config(source: str):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(source)


def weights_where(source: str) -> str:
    """Where a tower's weights are, without reading them; a UserError when they cannot be
    had. Online, a hub id costs one request (its file list)."""
    if is_local(source):
        folder = Path(source).expanduser()
        if any((folder / name).is_file() for name in WEIGHT_FILES):
            return f"weights in {folder}"
        raise UserError(f"{folder} holds no weights (none of {', '.join(WEIGHT_FILES)})")
    from huggingface_hub import try_to_load_from_cache

    if any(isinstance(try_to_load_from_cache(source, f), str) for f in WEIGHT_FILES):
        return f"weights of {source} in the hub cache"
    reason = offline_reason()
    if reason:
        unset = ", or unset HF_HUB_OFFLINE" if reason == OFFLINE_ENV else ""
        raise UserError(
            f"the weights of {source} are not in the hub cache and the hub is not asked "
            f"({reason}): fetch them ahead with `hf download {source}`{unset}"
        )
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from ..hub.env import hub_api

    try:
        info = hub_api().model_info(source, files_metadata=True)
    except GatedRepoError:
        raise UserError(
            f"{source} is gated: accept its terms at https://huggingface.co/{source}"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(f"{source} not found on the hub (or private to another account)") from None
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    found = [name for name in WEIGHT_FILES if name in sizes]
    if not found:
        raise UserError(f"{source} on the hub holds no weights ({', '.join(WEIGHT_FILES)})")
    return f"{source} on the hub ({size(sizes[found[0]])}, fetched at the first run)"


def describe_tower(name: str, kind: str) -> tuple[str, dict]:
    """(a line on the tower: its type, shape and where its weights are; the text tower's
    limits: "positions" and "vocab") for `kind` "vision" or "text"; a UserError naming the
    key when its config or weights cannot be had."""
    key = f"model.{kind}"
    if name == TINY:
        return "the tiny preset: random weights, built in", {}
    source = source_of(name, kind)
    try:
        config = load_config(source)
    except (OSError, ValueError) as exc:
        first = (
            str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        )
        raise UserError(f"{key} = {name!r}: {first}; {fetch_advice([name])}") from None
    if kind == "vision" and config.model_type not in VISION_TYPES:
        raise UserError(
            f"{key} = {name!r} is a {config.model_type!r} checkpoint; use a CLIP or "
            f"Chinese-CLIP one, or a preset: {', '.join([*VISION_PRESETS, TINY])}"
        )
    part = getattr(config, f"{kind}_config", config)
    shape = f"{part.model_type}, {part.num_hidden_layers} layers, width {part.hidden_size}"
    limits = {}
    if kind == "vision":
        shape += f", {part.image_size} px"
    else:
        limits = {"positions": getattr(part, "max_position_embeddings", None)}
        limits["vocab"] = getattr(part, "vocab_size", None)
        shape += f", {limits['positions']} positions, vocabulary {limits['vocab']:,}"
    try:
        where = weights_where(source)
    except UserError as exc:
        raise UserError(f"{key} = {name!r}: {exc}") from None
    return f"{source}: {shape}; {where}", limits


def tokenizer_problem(tokenizer, vocab_size: int | None) -> str | None:
    """Why a loaded tokenizer cannot feed the text tower, or None."""
    size = len(tokenizer)
    if size <= 10 or tokenizer.cls_token_id is None:
        return f"the tokenizer has no vocabulary ({size} tokens): the folder needs vocab.txt"
    if vocab_size and size > vocab_size:
        return (
            f"the tokenizer has {size:,} tokens but the tower embeds {vocab_size:,}: they "
            f"come from different models"
        )
    return None
