"""The training stage on the small demo set with the tiny model, on the CPU."""

import json
import re

import pytest
import torch

from retclip_pipeline import profile as profiles
from retclip_pipeline.errors import StageInterrupted, UserError
from retclip_pipeline.runner import run

from .conftest import PAIRED_DATA, PATIENCE_S, demo_toml, write_profile

TRAIN = {"batch_size": 16, "epochs": 3, "lr": 0.0005, "warmup_steps": 2, "workers": 0}


def _profile(tmp_path, root, train=None, name="p.toml", workdir="run", paired=False):
    text = demo_toml(
        root, workdir=workdir, data=PAIRED_DATA if paired else None, train=TRAIN | (train or {})
    )
    return profiles.load(write_profile(tmp_path, text, name))


def _weights(workdir):
    state = torch.load(workdir / "logs/t/checkpoints/epoch_latest.pt", weights_only=True)
    return state["state_dict"], state


@pytest.mark.parametrize(
    "extra",
    [
        {"save_every_steps": 2},
        {"save_every_steps": 2, "augment": True, "hflip": True, "workers": 2, "accumulation": 2},
    ],
)
def test_a_resumed_run_ends_with_the_same_weights(tmp_path, demo_root, monkeypatch, extra):
    from retclip_pipeline.training import trainer as train

    whole = _profile(tmp_path, demo_root, extra, "whole.toml", "whole")
    run(whole, whole.workdir_path(), lambda e: None)
    expected, _ = _weights(whole.workdir_path())

    cut = _profile(tmp_path, demo_root, extra, "cut.toml", "cut")
    original = train.Trainer.optimizer_step

    def stop_after_five(self):
        original(self)
        if self.progress.step == 5:  # after the step-4 checkpoint, before the next
            raise KeyboardInterrupt

    monkeypatch.setattr(train.Trainer, "optimizer_step", stop_after_five)
    with pytest.raises(StageInterrupted):
        run(cut, cut.workdir_path(), lambda e: None)
    _, saved = _weights(cut.workdir_path())
    assert saved["step"] == 4
    monkeypatch.setattr(train.Trainer, "optimizer_step", original)
    events = []
    run(cut, cut.workdir_path(), events.append)
    assert any("resuming at epoch" in e.message for e in events)
    resumed, final = _weights(cut.workdir_path())
    assert final["step"] == _weights(whole.workdir_path())[1]["step"]
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    history = [
        json.loads(line)
        for line in (cut.workdir_path() / "logs/t/metrics.jsonl").read_text().splitlines()
    ]
    assert [m["epoch"] for m in history] == [1, 2, 3]


def test_outputs_and_validation_figures(tmp_path, demo_root):
    profile = _profile(tmp_path, demo_root, {"save_every": 2})
    summaries = run(profile, profile.workdir_path(), lambda e: None)
    folder = profile.workdir_path() / "logs/t"
    names = sorted(p.name for p in (folder / "checkpoints").iterdir())
    assert names == ["best.pt", "epoch2.pt", "epoch3.pt", "epoch_latest.pt"]
    assert list(folder.glob("params_*.txt")) and list(folder.glob("out_*.log"))
    metrics = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"train_loss", "val_loss", "val_i2t", "val_t2i", "val_i2t_class"} <= set(metrics)
    checkpoint = torch.load(folder / "checkpoints/epoch3.pt", weights_only=True)
    assert {"epoch", "step", "name", "state_dict", "optimizer"} <= set(checkpoint)
    assert summaries["train"]["epochs"] == 3


def test_frozen_towers_do_not_move(tmp_path, demo_root):
    profile = _profile(tmp_path, demo_root, {"epochs": 1})
    profile.model.freeze = "both"
    torch.manual_seed(0)
    from retclip_pipeline.model.build import ModelSpec, build

    before, _ = build(ModelSpec("tiny", "tiny", 24, 32))
    run(profile, profile.workdir_path(), lambda e: None)
    after, _ = _weights(profile.workdir_path())
    for key, value in before.state_dict().items():
        if key.startswith(("visual.", "bert.")):
            assert torch.equal(value, after[key]), key
    assert not torch.equal(
        before.state_dict()["global_feature_mapping.weight"], after["global_feature_mapping.weight"]
    )


def test_non_finite_loss_stops_with_one_line_and_keeps_the_checkpoint(
    tmp_path, demo_root, monkeypatch
):
    from retclip_pipeline.model import loss as losses

    profile = _profile(tmp_path, demo_root)
    original, calls = losses.retclip_loss, []

    def poisoned(out, gather=None):  # fine through epoch 1 (4 batches) and its validation
        calls.append(1)  # (2 batches), then NaN
        total, parts = original(out, gather)
        return (total * float("nan"), parts) if len(calls) > 6 else (total, parts)

    monkeypatch.setattr(losses, "retclip_loss", poisoned)
    with pytest.raises(
        UserError, match=r"loss became nan at epoch 2.*last good checkpoint is kept"
    ):
        run(profile, profile.workdir_path(), lambda e: None)
    _, saved = _weights(profile.workdir_path())
    assert saved["epoch"] == 1


def test_early_stopping(tmp_path, demo_root):
    settings = {"epochs": 6, "lr": 0.0, "early_stop": "val_loss", "patience": 1}
    profile = _profile(tmp_path, demo_root, settings)
    events = []
    run(profile, profile.workdir_path(), events.append)
    assert any(e.message.startswith("early stop") for e in events)
    _, saved = _weights(profile.workdir_path())
    assert saved["epoch"] == 2


def test_temperatures_are_clamped_after_every_step_and_learn_again(
    tmp_path, demo_root, monkeypatch
):
    from retclip_pipeline.model.retclip import LOGIT_SCALE_MAX
    from retclip_pipeline.training import trainer as train

    original, grads, stored = train.Trainer.optimizer_step, [], []

    def pushed_out_first(self):
        model = self.module
        if self.progress.step == 0:  # out of range before the first update: above and below
            with torch.no_grad():
                model.logit_scale.fill_(LOGIT_SCALE_MAX + 1)
                model.logit_scale_left.fill_(-1.0)
        grads.append([float(s.grad) for s in model.log_scales()])
        original(self)
        stored.append([float(s.detach()) for s in model.log_scales()])

    monkeypatch.setattr(train.Trainer, "optimizer_step", pushed_out_first)
    profile = _profile(tmp_path, demo_root, {"epochs": 1})
    run(profile, profile.workdir_path(), lambda e: None)
    assert len(stored) == 4
    # Back at the bounds after the first step, as in the reference...
    assert stored[0][:2] == pytest.approx([LOGIT_SCALE_MAX, 0.0], abs=1e-6)
    # ...where the loss moves them again (past ln 100 the gradient was 0 for good).
    assert all(g != 0.0 for later in grads[1:] for g in later)
    assert all(0.0 <= s <= LOGIT_SCALE_MAX + 1e-6 for values in stored for s in values)
    saved, _ = _weights(profile.workdir_path())
    for name in ("logit_scale", "logit_scale_left", "logit_scale_right"):
        assert 0.0 <= float(saved[name]) <= LOGIT_SCALE_MAX + 1e-6, name


def test_paired_eyes_train_each_text_head_on_its_own_text(tmp_path, paired_root):
    profile = _profile(tmp_path, paired_root, {"epochs": 1, "batch_size": 8}, paired=True)
    summaries = run(profile, profile.workdir_path(), lambda e: None)
    assert summaries["train"]["steps"] == 3


def test_batch_larger_than_the_split_is_a_user_error(tmp_path, demo_root):
    profile = _profile(tmp_path, demo_root, {"batch_size": 512})
    with pytest.raises(UserError, match="fewer than train.batch_size = 512"):
        run(profile, profile.workdir_path(), lambda e: None)


def test_export_loads_back_with_transformers_and_the_reference_layout(tmp_path, demo_root):
    from retclip_pipeline.model.export import load_exported
    from retclip_pipeline.model.tokenizer import encode_texts
    from retclip_pipeline.model.weights import load_reference

    profile = _profile(tmp_path, demo_root, {"epochs": 1})
    run(profile, profile.workdir_path(), lambda e: None)
    folder = profile.workdir_path() / "logs/t/export"
    trained, _ = _weights(profile.workdir_path())
    model, tokenizer = load_exported(folder)
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key]), key
    from retclip_pipeline.model.build import ModelSpec, build

    fresh, _ = build(ModelSpec("tiny", "tiny", 24, 32))
    assert load_reference(fresh, folder / "retclip_state_dict.pt").startswith("RET-CLIP")
    ids, mask = encode_texts(tokenizer, ["a swollen optic disc"], 24)
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, b = model(images, None, ids, mask), fresh.eval()(images, None, ids, mask)
    assert torch.allclose(a.image, b.image, atol=1e-6) and torch.allclose(a.text, b.text, atol=1e-6)


@pytest.mark.parametrize("retry", [False, True])
def test_out_of_gpu_memory_names_the_batch_that_fits(tmp_path, demo_root, monkeypatch, retry):
    from retclip_pipeline.training import trainer as train

    original = train.Trainer.run

    def small_gpu(self):  # a GPU with room for 8 pairs, simulated
        if self.cfg.batch_size > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return original(self)

    monkeypatch.setattr(train.Trainer, "run", small_gpu)
    from retclip_pipeline.training import oom

    monkeypatch.setattr(oom, "fits", lambda profile, batch: batch <= 8)
    profile = _profile(tmp_path, demo_root, {"epochs": 1, "oom_retry": retry})
    if not retry:
        with pytest.raises(
            UserError,
            match=r"train.batch_size = 8 with train.accumulation = 2 "
            r"keeps the global batch of 16",
        ):
            run(profile, profile.workdir_path(), lambda e: None)
        return
    events = []
    summaries = run(profile, profile.workdir_path(), events.append)
    assert any("retrying with train.batch_size = 8" in e.message for e in events)
    assert summaries["train"]["steps"] == 4  # 65 pairs: 8 batches of 8, 2 per step


def test_a_stop_saves_the_step_it_reached_and_resumes_from_it(tmp_path, demo_root, monkeypatch):
    """Ctrl-C or the wizard's stop costs at most the step under way, with no step saving."""
    from retclip_pipeline.training import trainer as train

    whole = _profile(tmp_path, demo_root, {"workers": 2}, "whole.toml", "whole")
    run(whole, whole.workdir_path(), lambda e: None)
    expected, _ = _weights(whole.workdir_path())

    cut = _profile(tmp_path, demo_root, {"workers": 2}, "cut.toml", "cut")
    original = train.Trainer.optimizer_step

    def ask_at_step_six(self):  # epoch 2, batch 2 of 4: mid-epoch
        original(self)
        if self.progress.step == 6:
            self.stop._handler(2, None)  # as the SIGINT handler does

    monkeypatch.setattr(train.Trainer, "optimizer_step", ask_at_step_six)
    events = []
    with pytest.raises(StageInterrupted):
        run(cut, cut.workdir_path(), events.append)
    _, saved = _weights(cut.workdir_path())
    assert (saved["step"], saved["progress"]["batch"]) == (6, 2)
    assert any("stopped at epoch 2, batch 2, step 6" in e.message for e in events)
    monkeypatch.setattr(train.Trainer, "optimizer_step", original)
    events = []
    run(cut, cut.workdir_path(), events.append)
    assert any("resuming at epoch 2, batch 2, step 6" in e.message for e in events)
    resumed, _ = _weights(cut.workdir_path())
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key


@pytest.mark.slow
def test_ctrl_c_during_training_saves_and_a_rerun_resumes_mid_epoch(tmp_path, demo_root):
    import os
    import signal
    import subprocess
    import sys
    import time

    from .conftest import ROOT

    profile = _profile(tmp_path, demo_root, {"epochs": 6, "workers": 2, "batch_size": 4})
    command = [sys.executable, "-m", "retclip_pipeline", "--profile", str(profile.source)]
    process = subprocess.Popen(
        command, cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    events_path = profile.workdir_path() / "events.jsonl"

    def last_batch() -> tuple[str | None, int, int]:
        """The last training progress written: (task, batches done, batches in an epoch)."""
        from retclip_pipeline.events import read_events

        progress = [e for e in read_events(events_path) if e.kind == "progress" and e.task]
        epochs = [e for e in progress if e.task.startswith("epoch ")]
        return (epochs[-1].task, epochs[-1].done, epochs[-1].total) if epochs else (None, 0, 0)

    # Stop the whole group, read where training is, and send Ctrl-C only when at least one
    # more step of the epoch is left: on a loaded machine a signal sent blindly can land at
    # an epoch's end, where stopping rightly saves batch 0.
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        os.killpg(process.pid, signal.SIGSTOP)
        task, done, total = last_batch()
        if task is not None and task != "epoch 1/6" and 0 < done <= total - 2:
            os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: workers get it too
            os.killpg(process.pid, signal.SIGCONT)
            break
        os.killpg(process.pid, signal.SIGCONT)
    else:
        pytest.fail("training never reached the middle of an epoch after the first")
    _, err = process.communicate(timeout=PATIENCE_S)
    assert process.returncode in (130, -signal.SIGINT), err
    _, saved = _weights(profile.workdir_path())
    epoch, batch = saved["epoch"] + 1, saved["progress"]["batch"]
    assert "Traceback" not in err and f"stopped at epoch {epoch}, batch {batch}" in err
    assert batch > 0  # mid-epoch: 16 batches an epoch
    again = subprocess.run(
        command + ["--stages", "train"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
    )
    assert again.returncode == 0, again.stderr
    assert f"resuming at epoch {epoch}, batch {batch}" in again.stderr


def test_checkpointed_training_logs_no_library_warning_and_slow_steps_never_read_zero(
    tmp_path, demo_root, monkeypatch
):
    """Gradient checkpointing (the shipped profiles' setting) through transformers' current
    API with the text tower's cache off: no deprecation or use_cache warning in the log. A
    step slower than a sample a second (ViT-B/16 on a busy CPU) reads per minute or hour."""
    import time

    from retclip_pipeline.training import trainer as train

    class SlowClock:  # every reading 20 minutes after the last
        now = 0.0
        strftime = staticmethod(time.strftime)

        @classmethod
        def monotonic(cls):
            cls.now += 1200.0
            return cls.now

    monkeypatch.setattr(train, "time", SlowClock)
    profile = _profile(tmp_path, demo_root, {"epochs": 1, "grad_checkpointing": True})
    events = []
    run(profile, profile.workdir_path(), events.append)
    warned = [e.message for e in events if e.level == "warning" and e.stage == "train"]
    assert not [w for w in warned if "checkpointing" in w or "use_cache" in w], warned
    steps = [e.message for e in events if e.message.startswith("step ")]
    rate = r", [\d.]+ samples/(min|h), training ETA \d+:\d\d:\d\d$"  # ETA of all epochs
    assert all(re.search(rate, s) for s in steps[:-1]), steps
    assert re.search(r", [\d.]+ samples/(min|h)$", steps[-1]), steps  # the last: nothing left
    epoch = next(e.message for e in events if e.message.startswith("epoch 1, step"))
    assert not re.search(r"\d\.\d{5}", epoch), epoch  # 4 figures: no float noise (e-06)


def test_every_optimizer_step_clamps_the_stored_scales_and_one_pushed_over_comes_back():
    """Trainer.optimizer_step, as training runs it: the three stored log-scales are clamped
    to [0, ln 100] in place after the step, so that a scale pushed past a bound is at the
    bound, and the next step in the other direction takes it back inside."""
    from types import SimpleNamespace

    from retclip_pipeline.model.build import ModelSpec, build
    from retclip_pipeline.model.retclip import LOGIT_SCALE_MAX
    from retclip_pipeline.training.trainer import Trainer

    torch.manual_seed(0)
    model, _ = build(ModelSpec(vision="tiny", text="tiny", context_length=24, image_size=32))
    optimizer = torch.optim.SGD(model.log_scales(), lr=1.0)  # a step is minus the gradient
    trainer = SimpleNamespace(
        cfg=SimpleNamespace(clip_grad_norm=0),
        scaler=torch.amp.GradScaler("cuda", enabled=False),
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
        module=model,
        progress=SimpleNamespace(step=0),
    )

    def step(*grads: float) -> list[float]:
        for scale, grad in zip(model.log_scales(), grads, strict=True):
            scale.grad = torch.tensor(grad)
        Trainer.optimizer_step(trainer)
        return [float(scale.detach()) for scale in model.log_scales()]

    start = [float(scale.detach()) for scale in model.log_scales()]
    # Patient scale pushed 2 past ln 100, the left one 1 below 0, the right one left alone.
    got = step(start[0] - LOGIT_SCALE_MAX - 2, start[1] + 1, 0.0)
    assert got == pytest.approx([LOGIT_SCALE_MAX, 0.0, start[2]], abs=1e-6)
    got = step(0.5, -0.5, 0.0)  # back inside from either bound
    assert got == pytest.approx([LOGIT_SCALE_MAX - 0.5, 0.5, start[2]], abs=1e-6)
    assert trainer.progress.step == 2
