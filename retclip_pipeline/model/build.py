"""Building RET-CLIP from a profile's `model` section: tower presets, hub ids or local
folders, and the offline `tiny` preset for the demo and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .sources import (
    TINY,
    VISION_PRESETS,
    fetch_advice,
    load_config,
    tokenizer_problem,
    vision_source,
)
from .tokenizer import TEXT_PRESETS, load_tokenizer, text_source

TINY_WIDTH, TINY_EMBED, TINY_PATCH = 64, 64, 8


@dataclass
class ModelSpec:
    vision: str
    text: str
    context_length: int
    image_size: int


def _tiny_vision(image_size: int):
    from transformers import ChineseCLIPVisionConfig, ChineseCLIPVisionModel

    config = ChineseCLIPVisionConfig(
        hidden_size=TINY_WIDTH,
        intermediate_size=2 * TINY_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=TINY_PATCH,
    )
    return ChineseCLIPVisionModel(config), None


def load_vision_tower(name: str, weights: bool = True):
    """(vision model, its trained projection or None) from a full CLIP-family checkpoint or
    a vision model alone. `weights` False builds the same shapes from the config alone
    (random weights; on the meta device, nothing is allocated)."""
    from torch import nn
    from transformers import AutoModel

    source = vision_source(name)
    config = load_config(source)
    if config.model_type in ("chinese_clip", "clip"):
        if weights:
            full = AutoModel.from_pretrained(source)
            return full.vision_model, full.visual_projection
        vision = AutoModel.from_config(config.vision_config)
        projection = nn.Linear(config.vision_config.hidden_size, config.projection_dim, bias=False)
        return vision, projection
    if config.model_type in ("chinese_clip_vision_model", "clip_vision_model"):
        model = AutoModel.from_pretrained(source) if weights else AutoModel.from_config(config)
        return model, None
    raise UserError(
        f"model.vision = {name!r} is a {config.model_type!r} checkpoint; use a CLIP "
        f"or Chinese-CLIP one, or a preset: {', '.join([*VISION_PRESETS, TINY])}"
    )


def _tiny_text(vocab_size: int, context_length: int):
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * TINY_WIDTH,
        max_position_embeddings=max(64, context_length),
    )
    return BertModel(config, add_pooling_layer=False)


def load_text_tower(name: str, weights: bool = True):
    """The BERT-style text model (without its pooler) of a preset, hub id or folder;
    `weights` False: the same shapes from the config alone."""
    from transformers import AutoModel

    source = text_source(name)
    config = load_config(source)
    if config.model_type == "chinese_clip":  # the text tower of a Chinese-CLIP checkpoint
        if weights:
            return AutoModel.from_pretrained(source).text_model
        return AutoModel.from_config(config.text_config)

    def load(**options):
        if weights:
            return AutoModel.from_pretrained(source, **options)
        return AutoModel.from_config(config, **options)

    try:
        return load(add_pooling_layer=False)
    except TypeError:  # an architecture without a pooler option
        return load()


def build(spec: ModelSpec, weights: bool = True):
    """(RetClip model, tokenizer) for the spec; towers start from their pretrained weights,
    the heads from the reference's initialisation. `weights` False reads only configs and
    the tokenizer: the shapes for estimates, built on the meta device by the caller. A tower
    that cannot be had (a wrong name, no network, no access) is a user error naming the key."""
    try:
        return _build(spec, weights)
    except (OSError, ValueError) as exc:  # what transformers and the hub client raise
        first = (
            str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        )
        raise UserError(
            f"cannot load the towers model.vision = {spec.vision!r}, model.text = "
            f"{spec.text!r}: {first}; {fetch_advice([spec.vision, spec.text])}"
        ) from None


def _build(spec: ModelSpec, weights: bool):
    from .retclip import LOGIT_SCALE_INIT, LOGIT_SCALE_SCRATCH, RetClip

    tokenizer = load_tokenizer(spec.text)
    if spec.vision == TINY:
        vision, projection = _tiny_vision(spec.image_size)
    else:
        vision, projection = load_vision_tower(spec.vision, weights)
    if spec.text == TINY:
        text = _tiny_text(len(tokenizer), spec.context_length)
    else:
        text = load_text_tower(spec.text, weights)
    problem = tokenizer_problem(tokenizer, getattr(text.config, "vocab_size", None))
    if problem:
        raise UserError(f"model.text = {spec.text!r}: {problem}")
    limit = getattr(text.config, "max_position_embeddings", None)
    if limit and spec.context_length > limit:
        raise UserError(
            f"model.context_length = {spec.context_length} is over the text tower's "
            f"limit of {limit} positions: lower it"
        )
    embed_dim = (
        projection.out_features
        if projection is not None
        else (TINY_EMBED if spec.vision == TINY else 512)
    )
    from_scratch = spec.vision == TINY and spec.text == TINY
    model = RetClip.from_towers(
        vision,
        text,
        embed_dim,
        tokenizer.pad_token_id or 0,
        LOGIT_SCALE_SCRATCH if from_scratch else LOGIT_SCALE_INIT,
    )
    if projection is not None and weights:
        model.visual_projection.load_state_dict(projection.state_dict())
    return model, tokenizer


def image_size_of(spec: ModelSpec) -> int:
    """The resolution the image tower expects."""
    if spec.vision == TINY:
        return spec.image_size
    config = load_config(vision_source(spec.vision))
    vision = getattr(config, "vision_config", config)
    return vision.image_size


__all__ = ["VISION_PRESETS", "TEXT_PRESETS", "ModelSpec", "build", "image_size_of"]
