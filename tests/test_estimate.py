"""Estimates before a long run: parameters, memory and time, from the towers' configs alone
(the meta device), for this machine and for a GPU the user names."""

from __future__ import annotations

import pytest

from retclip_pipeline import profile as profiles
from retclip_pipeline.preflight.estimate import activation_bytes, estimate

from .conftest import demo_toml, write_profile

VIT_B = {"layers": 12, "width": 768, "heads": 12, "weights": 85_000_000, "dropout": 0.0}
BERT_B = {"layers": 12, "width": 768, "heads": 12, "weights": 85_000_000, "dropout": 0.1}


def _profile(tmp_path, demo_root, **sections) -> profiles.Profile:
    return profiles.load(write_profile(tmp_path, demo_toml(demo_root, **sections)))


def test_a_small_model_is_timed_on_the_cpu(tmp_path, demo_root):
    result = estimate(_profile(tmp_path, demo_root), pairs=65)
    lines = result.lines()
    assert lines[0].startswith("0.22 M parameters (0.22 M trained), 65 train pairs")
    assert "at batch 16 (fp32)" in lines[1] and "fits" in lines[1]
    assert "measured over 3 steps of 16 on the CPU" in lines[2]
    assert result.fits and result.here.epoch_seconds > 0 and result.named is None


def test_activations_follow_the_formula():
    trained = {**VIT_B, "trained": True}
    # ViT-B/16 at 224 px under bf16 autocast, fused attention: 197 x 768 x 46 bytes a layer
    # (measured on an H200: 14.9 GiB of activations at batch 128 with BERT-base at 100).
    half = activation_bytes(trained, 197, fp32=False, checkpointing=False, cpu=False)
    assert half == 12 * 197 * 768 * 46
    fp32 = activation_bytes(trained, 197, fp32=True, checkpointing=False, cpu=False)
    assert fp32 == 12 * 197 * 768 * 68
    # Checkpointing keeps each layer's input and recomputes one layer.
    kept = activation_bytes(trained, 197, fp32=False, checkpointing=True, cpu=False)
    assert kept == 12 * 197 * 768 * 2 + 197 * 768 * 46
    # On the CPU, attention with dropout keeps its probabilities: 5 a s^2 more a layer.
    bert = {**BERT_B, "trained": True}
    cpu = activation_bytes(bert, 100, fp32=False, checkpointing=False, cpu=True)
    assert cpu == 12 * (100 * 768 * 46 + 5 * 12 * 100 * 100)
    assert (
        activation_bytes(
            {**VIT_B, "trained": False}, 197, fp32=False, checkpointing=False, cpu=False
        )
        == 0
    )


def test_real_size_towers_from_their_configs_for_a_named_gpu(tmp_path, demo_root, real_towers):
    model = {"vision": str(real_towers["vision"]), "text": str(real_towers["text"])}
    model["context_length"] = 100
    profile = _profile(tmp_path, demo_root, model=model, data={"image_size": 224})
    profile.train.batch_size = 128
    result = estimate(profile, pairs=12989, gpu="a100-40gb", test_pairs=3253)
    assert result.parameters == 191_871_235 and result.trainable == result.parameters
    named = result.named
    assert named.device == "A100 40GB" and named.fits
    # Measured on an H200 at bf16: an 18.2 GiB allocator peak (and the CUDA context).
    assert named.memory.total - named.memory.overhead == pytest.approx(18.2 * 2**30, rel=0.05)
    text = "\n".join(result.lines())
    assert "assumed 30% of its 312 TFLOP/s bf16 peak" in text
    assert "time per epoch on A100 40GB: about" in text
    # A T4 has no bf16: fp16 at its own peak.
    t4 = estimate(profile, pairs=12989, gpu="t4").lines()
    assert any("(fp16)" in line for line in t4) and any("65 TFLOP/s fp16" in line for line in t4)
    # Freezing both towers trains the heads alone: no tower activations are kept.
    profile.model.freeze = "both"
    frozen = estimate(profile, pairs=12989, gpu="a100-40gb")
    assert frozen.trainable < 5_000_000 and frozen.named.memory.activations == 0
    assert frozen.named.epoch_seconds < named.epoch_seconds / 2
    # Gradient checkpointing: far less memory, a third more compute.
    profile.model.freeze = "none"
    profile.train.grad_checkpointing = True
    saved = estimate(profile, pairs=12989, gpu="a100-40gb", test_pairs=3253).named
    assert saved.memory.activations < named.memory.activations / 4
    assert saved.epoch_seconds == pytest.approx(named.epoch_seconds * 4 / 3, rel=0.05)


def test_paired_eyes_encode_two_images_and_three_texts(tmp_path, demo_root, real_towers):
    model = {"vision": str(real_towers["vision"]), "text": str(real_towers["text"])}
    single = _profile(tmp_path, demo_root, model=model | {"context_length": 100})
    paired = _profile(tmp_path, demo_root, model=model | {"context_length": 100})
    paired.data.eyes = "paired"
    one = estimate(single, 1000, "h100").named.memory.activations
    two = estimate(paired, 1000, "h100").named.memory.activations
    assert 2 * one < two < 3 * one
