"""The RET-CLIP model on the tiny preset: heads as in the reference, encode-once, the loss,
and weights in and out of the reference's layout (checked against an independent
OpenAI-style ViT written here from the reference's description)."""

import math

import pytest
import torch
from torch import nn

from retclip_pipeline.errors import UserError
from retclip_pipeline.model.build import ModelSpec, build
from retclip_pipeline.model.loss import info_nce, retclip_loss
from retclip_pipeline.model.retclip import LOGIT_SCALE_MAX
from retclip_pipeline.model.tokenizer import encode_texts
from retclip_pipeline.model.weights import load_reference, ours_to_reference, save_reference

SPEC = ModelSpec(vision="tiny", text="tiny", context_length=24, image_size=32)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, tokenizer = build(SPEC)
    return model.eval(), tokenizer


def _batch(tokenizer, n=3):
    torch.manual_seed(1)
    images = torch.randn(n, 3, 32, 32)
    ids, mask = encode_texts(tokenizer, ["a swollen optic disc"] * n, SPEC.context_length)
    return images, ids, mask


def test_heads_match_the_reference(tiny):
    model, _ = tiny
    assert model.global_feature_mapping.weight.shape == (64, 128)
    assert model.global_feature_mapping.bias is None
    assert model.left_feature_mapping.bias is None and model.right_feature_mapping.bias is None
    for head in (model.text_projection, model.text_projection_left, model.text_projection_right):
        assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear]
    for scale in model.scales():  # the tiny preset trains from scratch: CLIP's 1/0.07
        assert math.isclose(float(scale.detach()), 1 / 0.07, rel_tol=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
        model.clamp_scales_()  # what training does after every step
        assert math.isclose(float(model.scales()[0].detach()), 100.0, rel_tol=1e-5)  # clamped
        model.logit_scale.fill_(math.log(1 / 0.07))


def test_stored_scales_are_clamped_in_place_and_learn_again_from_the_bounds():
    # The reference clamps the stored log-scales to [0, ln 100]; a clamp on the value in use
    # only would leave a scale past the bound with no gradient, for good.
    torch.manual_seed(0)
    model, tokenizer = build(SPEC)
    with torch.no_grad():
        model.logit_scale.fill_(LOGIT_SCALE_MAX + 1)
        model.logit_scale_left.fill_(-1.0)
    model.clamp_scales_()
    stored = [float(s.detach()) for s in model.log_scales()]
    assert stored == pytest.approx([LOGIT_SCALE_MAX, 0.0, math.log(1 / 0.07)], abs=1e-6)
    assert model.logit_scale.requires_grad
    images = torch.randn(4, 3, 32, 32)
    prompts = ["a swollen optic disc", "a normal fundus", "drusen", "a tessellated fundus"]
    ids, mask = encode_texts(tokenizer, prompts, SPEC.context_length)
    retclip_loss(model(images, None, ids, mask))[0].backward()
    for scale in model.log_scales():  # at the bounds too, the gradient flows
        assert scale.grad is not None and float(scale.grad) != 0.0
    # Checkpoints saved before the stored values were clamped load clamped.
    state = model.state_dict() | {"logit_scale_right": torch.tensor(LOGIT_SCALE_MAX + 2)}
    model.load_state_dict(state)
    assert float(model.logit_scale_right.detach()) == pytest.approx(LOGIT_SCALE_MAX, abs=1e-6)


def test_same_image_is_encoded_once_with_the_same_result(tiny):
    model, tokenizer = tiny
    images, ids, mask = _batch(tokenizer)
    calls = []
    hook = model.visual.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        once = model(images, None, ids, mask)
        twice = model(images, images.clone(), ids, mask)
    hook.remove()
    assert len(calls) == 2  # one call each, the second on a double batch
    for name in ("image", "left", "right", "text"):
        assert torch.allclose(getattr(once, name), getattr(twice, name), atol=1e-5)
    assert torch.allclose(once.image.norm(dim=-1), torch.ones(3))


def test_loss_prefers_matching_pairs():
    features = nn.functional.normalize(torch.randn(4, 8), dim=-1)
    matched = info_nce(features, features, torch.tensor(50.0))
    shuffled = info_nce(features, features.roll(1, dims=0), torch.tensor(50.0))
    assert matched < 0.1 < shuffled


def test_loss_sums_three_parts(tiny):
    model, tokenizer = tiny
    images, ids, mask = _batch(tokenizer)
    total, parts = retclip_loss(model(images, None, ids, mask))
    assert set(parts) == {"patient", "left", "right"}
    assert math.isclose(float(total.detach()), sum(parts.values()), rel_tol=1e-5)


class ReferenceViT(nn.Module):
    """OpenAI's ViT as Chinese-CLIP and RET-CLIP write it (names and maths)."""

    def __init__(self, width, layers, heads, patch, resolution, embed):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros((resolution // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList()
        for _ in range(layers):
            block = nn.Module()
            block.attn = nn.MultiheadAttention(width, heads)
            block.ln_1, block.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
            block.mlp = nn.Module()
            block.mlp.c_fc, block.mlp.c_proj = (
                nn.Linear(width, 4 * width // 2),
                nn.Linear(4 * width // 2, width),
            )
            self.transformer.resblocks.append(block)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed))

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding)
        x = x.permute(1, 0, 2)
        for block in self.transformer.resblocks:
            h = block.ln_1(x)
            x = x + block.attn(h, h, h, need_weights=False)[0]
            h = block.mlp.c_fc(block.ln_2(x))
            x = x + block.mlp.c_proj(h * torch.sigmoid(1.702 * h))  # QuickGELU
        return self.ln_post(x[0]) @ self.proj


def test_exported_tower_matches_an_independent_reference_vit(tiny):
    model, _ = tiny
    exported = ours_to_reference(model.state_dict())
    visual = {
        k[len("module.visual.") :]: v for k, v in exported.items() if k.startswith("module.visual.")
    }
    reference = ReferenceViT(width=64, layers=2, heads=2, patch=8, resolution=32, embed=64)
    reference.load_state_dict(visual, strict=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(reference(images), model.encode_eye(images), atol=1e-4)
    heads = {
        "module.global_feature_mapping.weight",
        "module.left_feature_mapping.weight",
        "module.logit_scale_left",
        "module.text_projection.0.weight",
        "module.text_projection_right.2.bias",
        "module.bert.embeddings.word_embeddings.weight",
    }
    assert heads <= set(exported)


def test_reference_checkpoints_load_strictly(tiny, tmp_path):
    model, tokenizer = tiny
    released = tmp_path / "retclip.pt"
    save_reference(model, released)
    fresh, _ = build(SPEC)
    assert load_reference(fresh, released).startswith("RET-CLIP")
    images, ids, mask = _batch(tokenizer)
    with torch.no_grad():
        a, b = model(images, None, ids, mask), fresh.eval()(images, None, ids, mask)
    assert torch.allclose(a.image, b.image, atol=1e-6) and torch.allclose(a.text, b.text, atol=1e-6)

    # Chinese-CLIP's layout: {"epoch", "step", "state_dict"}, towers and one temperature, and
    # its own single text projection.
    state = torch.load(released, weights_only=True)
    towers = {
        k: v
        for k, v in state.items()
        if k.startswith(("module.visual.", "module.bert.")) or k == "module.logit_scale"
    }
    towers["module.text_projection"] = torch.zeros(64, 64)
    chinese = tmp_path / "cnclip.pt"
    torch.save({"epoch": 3, "step": 100, "state_dict": towers}, chinese)
    assert load_reference(build(SPEC)[0], chinese).startswith("Chinese-CLIP")

    # A checkpoint of other towers: one error naming the keys.
    other = ModelSpec(vision="tiny", text="tiny", context_length=24, image_size=48)
    with pytest.raises(UserError, match=r"does not fit .*of another shape .*position_embedding"):
        load_reference(build(other)[0], released)
    del state["module.right_feature_mapping.weight"]
    torch.save(state, tmp_path / "cut.pt")
    with pytest.raises(UserError, match=r"1 missing \(right_feature_mapping.weight\)"):
        load_reference(build(SPEC)[0], tmp_path / "cut.pt")


def test_pretrained_towers_load_from_a_local_folder(tmp_path):
    """The hub code path, on a Chinese-CLIP checkpoint saved locally (no network)."""
    from transformers import ChineseCLIPConfig, ChineseCLIPModel

    config = ChineseCLIPConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=dict(
            vocab_size=290,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        projection_dim=16,
    )
    ChineseCLIPModel(config).save_pretrained(tmp_path / "cnclip")
    spec = ModelSpec(vision=str(tmp_path / "cnclip"), text="tiny", context_length=24, image_size=32)
    model, _ = build(spec)
    source = ChineseCLIPModel.from_pretrained(tmp_path / "cnclip")
    assert torch.equal(model.visual_projection.weight, source.visual_projection.weight)
    assert model.global_feature_mapping.weight.shape == (16, 32)
    assert math.isclose(float(model.scales()[0].detach()), 90.0, rel_tol=1e-5)  # RET-CLIP's


@pytest.mark.parametrize("damage", ["", "{", "[]", '{"embed_dim": 24}'])
def test_a_damaged_export_config_is_named_not_a_traceback_from_json(tmp_path, damage):
    from retclip_pipeline.model.export import CONFIG, load_exported

    if damage:
        (tmp_path / CONFIG).write_text(damage, encoding="utf-8")
    with pytest.raises(ValueError, match=f"{CONFIG} is missing or damaged .*copy the export"):
        load_exported(tmp_path)
