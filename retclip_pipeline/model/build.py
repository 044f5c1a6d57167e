"""Building RET-CLIP from a profile's `model` section: tower presets, hub ids or local
folders, and the offline `tiny` preset for the demo and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .tokenizer import TEXT_PRESETS, load_tokenizer, text_source

# Short names a profile may use for `model.vision`; anything else is a hub id or a folder
# holding a CLIP-family checkpoint (a full dual encoder, or a vision model alone).
VISION_PRESETS = {
    "vit-b-16": "OFA-Sys/chinese-clip-vit-base-patch16",
    "vit-l-14": "OFA-Sys/chinese-clip-vit-large-patch14",
    "openai-vit-b-16": "openai/clip-vit-base-patch16",
}
TINY = "tiny"
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


def load_vision_tower(name: str):
    """(vision model, its trained projection or None) from a full CLIP-family checkpoint or
    a vision model alone."""
    from transformers import AutoConfig, AutoModel

    source = VISION_PRESETS.get(name, name)
    config = AutoConfig.from_pretrained(source)
    if config.model_type in ("chinese_clip", "clip"):
        full = AutoModel.from_pretrained(source)
        return full.vision_model, full.visual_projection
    if config.model_type in ("chinese_clip_vision_model", "clip_vision_model"):
        return AutoModel.from_pretrained(source), None
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


def load_text_tower(name: str):
    from transformers import AutoConfig, AutoModel

    source = text_source(name)
    config = AutoConfig.from_pretrained(source)
    if config.model_type == "chinese_clip":  # the text tower of a Chinese-CLIP checkpoint
        return AutoModel.from_pretrained(source).text_model
    try:
        return AutoModel.from_pretrained(source, add_pooling_layer=False)
    except TypeError:  # an architecture without a pooler option
        return AutoModel.from_pretrained(source)


def build(spec: ModelSpec):
    """(RetClip model, tokenizer) for the spec; towers start from their pretrained weights,
    the heads from the reference's initialisation. A tower that cannot be had (a wrong name,
    no network, no access) is a user error naming the key."""
    try:
        return _build(spec)
    except (OSError, ValueError) as exc:  # what transformers and the hub client raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot load the towers model.vision = {spec.vision!r}, model.text = "
            f"{spec.text!r}: {first}; check the names, your connection and token "
            f"(offline, only cached models load)"
        ) from None


def _build(spec: ModelSpec):
    from .retclip import LOGIT_SCALE_INIT, LOGIT_SCALE_SCRATCH, RetClip

    tokenizer = load_tokenizer(spec.text)
    if spec.vision == TINY:
        vision, projection = _tiny_vision(spec.image_size)
    else:
        vision, projection = load_vision_tower(spec.vision)
    if spec.text == TINY:
        text = _tiny_text(len(tokenizer), spec.context_length)
    else:
        text = load_text_tower(spec.text)
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
    model = RetClip(
        vision,
        vision.config.hidden_size,
        text,
        text.config.hidden_size,
        embed_dim,
        tokenizer.pad_token_id or 0,
        LOGIT_SCALE_SCRATCH if from_scratch else LOGIT_SCALE_INIT,
    )
    if projection is not None:
        model.visual_projection.load_state_dict(projection.state_dict())
    return model, tokenizer


def image_size_of(spec: ModelSpec) -> int:
    """The resolution the image tower expects."""
    if spec.vision == TINY:
        return spec.image_size
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(VISION_PRESETS.get(spec.vision, spec.vision))
    vision = getattr(config, "vision_config", config)
    return vision.image_size


__all__ = ["VISION_PRESETS", "TEXT_PRESETS", "ModelSpec", "build", "image_size_of"]
