"""RET-CLIP (Du et al., MICCAI 2024) over transformers towers.

One image tower encodes both eyes; a BERT-style text tower encodes the prompt. Heads, as in
the reference: the patient image feature maps concat(left, right) (1024 -> 512, no bias), the
left and right features map 512 -> 512 (no bias), and three text heads (patient, left, right),
each Linear -> ReLU -> Linear, read the same [CLS] state. Three learnable temperatures start at
ln 90 (towers trained from random weights, as in the tiny preset, stall at 90 and start at
CLIP's 1/0.07 instead); as in the reference, the stored log-scales are clamped in place to
[0, ln 100] after every optimizer step. Module names follow the reference so that its weights
load with a key mapping only for the towers (see weights.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

LOGIT_SCALE_INIT = math.log(90)  # RET-CLIP's, for fine-tuning pretrained towers
LOGIT_SCALE_SCRATCH = math.log(1 / 0.07)  # CLIP's, for towers trained from random weights
LOGIT_SCALE_MAX = math.log(100)


def _text_head(width: int, embed_dim: int) -> nn.Sequential:
    head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, embed_dim))
    for layer in head:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=width**-0.5)
    return head


def _clamp_loaded_scales(model: RetClip, incompatible_keys: object) -> None:
    """A load_state_dict post-hook (a named function, not a lambda: the model still pickles)."""
    model.clamp_scales_()


@dataclass
class RetClipOutput:
    """L2-normalised features and the three temperatures (already exponentiated)."""

    image: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    text: torch.Tensor
    text_left: torch.Tensor
    text_right: torch.Tensor
    scale: torch.Tensor
    scale_left: torch.Tensor
    scale_right: torch.Tensor


class RetClip(nn.Module):
    def __init__(
        self,
        vision: nn.Module,
        vision_width: int,
        text: nn.Module,
        text_width: int,
        embed_dim: int = 512,
        pad_token_id: int = 0,
        logit_scale_init: float = LOGIT_SCALE_INIT,
    ):
        super().__init__()
        self.visual = vision  # a transformers CLIP-style vision model: pooler = LN(CLS)
        self.visual_projection = nn.Linear(vision_width, embed_dim, bias=False)
        self.bert = text  # a transformers BERT-style model, used without its pooler
        self.pad_token_id = pad_token_id
        self.text_projection = _text_head(text_width, embed_dim)
        self.text_projection_left = _text_head(text_width, embed_dim)
        self.text_projection_right = _text_head(text_width, embed_dim)
        self.global_feature_mapping = nn.Linear(2 * embed_dim, embed_dim, bias=False)
        self.left_feature_mapping = nn.Linear(embed_dim, embed_dim, bias=False)
        self.right_feature_mapping = nn.Linear(embed_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(logit_scale_init))
        self.logit_scale_left = nn.Parameter(torch.tensor(logit_scale_init))
        self.logit_scale_right = nn.Parameter(torch.tensor(logit_scale_init))
        self.register_load_state_dict_post_hook(_clamp_loaded_scales)

    @classmethod
    def from_towers(
        cls,
        vision: nn.Module,
        text: nn.Module,
        embed_dim: int,
        pad_token_id: int,
        logit_scale_init: float = LOGIT_SCALE_INIT,
    ) -> RetClip:
        """The heads around two transformers towers, sized from their configs."""
        return cls(
            vision,
            vision.config.hidden_size,
            text,
            text.config.hidden_size,
            embed_dim,
            pad_token_id,
            logit_scale_init,
        )

    def encode_eye(self, pixels: torch.Tensor) -> torch.Tensor:
        """The raw single-eye feature (the tower's projected CLS), as used by linear probes."""
        pooled = self.visual(pixel_values=pixels).pooler_output
        return self.visual_projection(pooled)

    def encode_image(
        self, left: torch.Tensor, right: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patient, left and right image features (not normalised). `right=None` means both
        eyes are the same image: it is encoded once."""
        if right is None:
            left_raw = right_raw = self.encode_eye(left)
        else:
            both = self.encode_eye(torch.cat([left, right]))
            left_raw, right_raw = both.split(left.shape[0])
        return self.map_eyes(left_raw, right_raw)

    def map_eyes(
        self, left_raw: torch.Tensor, right_raw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The image heads over raw single-eye features: patient, left, right."""
        patient = self.global_feature_mapping(torch.cat([left_raw, right_raw], dim=-1))
        return patient, self.left_feature_mapping(left_raw), self.right_feature_mapping(right_raw)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patient, left and right text features (not normalised) from the [CLS] state."""
        if attention_mask is None:
            attention_mask = input_ids.ne(self.pad_token_id).long()
        cls = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        return (
            self.text_projection(cls),
            self.text_projection_left(cls),
            self.text_projection_right(cls),
        )

    def log_scales(self) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter]:
        """The stored temperatures (logs): patient, left, right."""
        return self.logit_scale, self.logit_scale_left, self.logit_scale_right

    def scales(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Unclamped here: a clamp in the forward has no gradient at its bounds, so a scale
        # that reached one would stay there. clamp_scales_ keeps the stored values in range.
        return tuple(s.exp() for s in self.log_scales())

    @torch.no_grad()
    def clamp_scales_(self) -> None:
        """Clamp the stored log-scales to [0, ln 100] in place: after every optimizer step
        (the reference's rule) and on loading, for checkpoints saved before that rule."""
        for s in self.log_scales():
            s.clamp_(0, LOGIT_SCALE_MAX)

    def forward(
        self,
        left: torch.Tensor,
        right: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        eye_texts: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> RetClipOutput:
        """Normalised features and temperatures. With `eye_texts` (left ids, left mask, right
        ids, right mask) the left and right text heads read their own eye's text; otherwise
        all three read the patient text, as in the reference."""
        image, image_left, image_right = self.encode_image(left, right)
        text, text_left, text_right = self.encode_text(input_ids, attention_mask)
        if eye_texts is not None:
            text_left = self.encode_text(eye_texts[0], eye_texts[1])[1]
            text_right = self.encode_text(eye_texts[2], eye_texts[3])[2]
        scale, scale_left, scale_right = self.scales()
        return RetClipOutput(
            F.normalize(image, dim=-1),
            F.normalize(image_left, dim=-1),
            F.normalize(image_right, dim=-1),
            F.normalize(text, dim=-1),
            F.normalize(text_left, dim=-1),
            F.normalize(text_right, dim=-1),
            scale,
            scale_left,
            scale_right,
        )
