"""best.pt by a chosen validation figure, keep_last, and the experiment trackers (TensorBoard
for real; wandb and MLflow through fake modules), on the demo set with the tiny model."""

import json
import sys
import types

import pytest
import torch

from retclip_pipeline import profile as profiles
from retclip_pipeline.errors import StageInterrupted, UserError
from retclip_pipeline.layout import RunLayout
from retclip_pipeline.preflight.check import run_checks
from retclip_pipeline.preflight.costs import kept_checkpoints
from retclip_pipeline.profile_schema import Profile
from retclip_pipeline.runner import run
from retclip_pipeline.training import tracking
from retclip_pipeline.training.trainer import Progress
from retclip_pipeline.training.validation import update_best

from .conftest import demo_toml, write_profile

TRAIN = {"batch_size": 16, "epochs": 3, "lr": 0.0005, "warmup_steps": 2, "workers": 0}


def _profile(tmp_path, root, train=None, name="p.toml", workdir="run"):
    text = demo_toml(root, workdir=workdir, train=TRAIN | (train or {}))
    return profiles.load(write_profile(tmp_path, text, name))


def _history(layout):
    return [json.loads(line) for line in layout.metrics.read_text().splitlines()]


class _Emit:
    def __init__(self):
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def test_tensorboard_events_best_checkpoint_keep_last_and_the_report(tmp_path, demo_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    profile = _profile(
        tmp_path, demo_root, {"report_to": ["tensorboard"], "save_every": 1, "keep_last": 2}
    )
    events = []
    run(profile, profile.workdir_path(), events.append)
    layout = RunLayout.of(profile)

    names = sorted(p.name for p in layout.checkpoints.iterdir())
    assert names == ["best.pt", "epoch2.pt", "epoch3.pt", "epoch_latest.pt"]

    history = _history(layout)
    figures = [m["val_i2t_class"] for m in history]  # the default: labels are there
    best_epoch = figures.index(max(figures)) + 1  # the first of equals stays best
    best = torch.load(layout.best, weights_only=True)
    assert best["epoch"] == best_epoch
    assert best["best"] == {
        "metric": "val_i2t_class",
        "value": max(figures),
        "epoch": best_epoch,
        "epochs": 3,
    }
    assert {"state_dict", "optimizer", "scheduler", "progress"} <= set(best)

    folder = layout.tensorboard
    assert folder == profile.workdir_path() / "tensorboard" / "t"
    assert list(folder.glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    step_tags = {"train/loss", "train/lr", "train/samples_per_s"}
    step_tags |= {f"train/loss_{p}" for p in ("patient", "left", "right")}
    step_tags |= {f"train/logit_scale_{p}" for p in ("patient", "left", "right")}
    epoch_tags = {"train/epoch_loss", "val/loss", "val/i2t", "val/t2i", "val/i2t_class"}
    assert step_tags | epoch_tags <= tags, tags
    steps = history[-1]["step"]
    assert [e.step for e in accumulator.Scalars("train/loss_patient")] == list(range(1, steps + 1))
    logged = [round(e.value, 5) for e in accumulator.Scalars("val/i2t_class")]
    assert logged == pytest.approx(figures, abs=1e-5)

    results = json.loads(layout.results.read_text())
    note = f"best epoch {best_epoch} of 3 by val class-level i2t R@1 = "
    # The checkpoint by its place in the run folder, which may move: no absolute path.
    shown = layout.best.relative_to(profile.workdir_path()).as_posix()
    assert results["checkpoint"].startswith(f"{shown} (") and note in results["checkpoint"]
    assert note in layout.report.read_text()
    assert any("with best.pt's weights" in e.message for e in events)


@pytest.mark.parametrize(
    ("name", "values", "improved", "best"),
    [
        ("val_loss", [1.0, 0.8, 0.9, 0.7], [True, True, False, True], 0.7),
        ("val_i2t", [0.2, 0.5, 0.4, 0.5], [True, True, False, False], 0.5),
        ("val_i2t_class", [0.3, 0.1, 0.2, 0.6], [True, False, False, True], 0.6),
    ],
)
def test_the_best_figure_rises_for_recalls_and_falls_for_losses(name, values, improved, best):
    cfg = Profile().train
    cfg.best_metric = name
    progress, seen = Progress(), []
    for epoch, value in enumerate(values, start=1):
        progress.epoch = epoch
        metrics = {"val_loss": 5.0, "val_i2t": 0.0, "val_i2t_class": 0.0} | {name: value}
        seen.append(update_best(progress, cfg, metrics, _Emit()))
    assert seen == improved
    assert progress.best == best and progress.best_metric == name
    assert progress.best_epoch == max(i + 1 for i, ok in enumerate(improved) if ok)


def test_the_default_figure_and_a_missing_one():
    cfg, emit = Profile().train, _Emit()
    labelled, unlabelled = Progress(epoch=1), Progress(epoch=1)
    assert update_best(labelled, cfg, {"val_loss": 1.0, "val_i2t_class": 0.2}, emit)
    assert update_best(unlabelled, cfg, {"val_loss": 1.0, "val_i2t": 0.2}, emit)
    assert (labelled.best_metric, unlabelled.best_metric) == ("val_i2t_class", "val_loss")
    assert not update_best(Progress(), cfg, {}, emit)  # nothing validated: no best.pt
    assert not emit.warnings

    cfg.best_metric = "val_i2t_class"
    progress = Progress(epoch=1)
    assert update_best(progress, cfg, {"val_loss": 1.0, "val_i2t": 0.2}, emit)
    assert progress.best_metric == "val_loss" and "val_i2t_class" in emit.warnings[0]

    cfg.best_metric, cfg.early_stop = "", "val_t2i"  # early stopping's figure, when alone
    progress = Progress(epoch=1)
    update_best(progress, cfg, {"val_loss": 1.0, "val_t2i": 0.4, "val_i2t_class": 0.1}, emit)
    assert progress.best_metric == "val_t2i"


def test_early_stopping_and_best_metric_name_one_figure(tmp_path, demo_root):
    text = demo_toml(demo_root, train={"early_stop": "val_loss", "best_metric": "val_i2t"})
    with pytest.raises(UserError, match=r"train\.early_stop"):
        profiles.load(write_profile(tmp_path, text))
    text = demo_toml(demo_root, train={"report_to": ["tensorbored"]})
    with pytest.raises(UserError, match=r"train\.report_to.*tensorbored"):
        profiles.load(write_profile(tmp_path, text))
    # A class-level figure without labels: said when the profile loads, not swapped later.
    text = demo_toml(demo_root, train={"best_metric": "val_i2t_class"}, data={"label_column": ""})
    with pytest.raises(UserError, match=r"train\.best_metric.*needs class labels"):
        profiles.load(write_profile(tmp_path, text))


def test_a_resumed_run_keeps_the_best_figure_and_best_pt(tmp_path, demo_root, monkeypatch):
    from retclip_pipeline.training import checkpoint
    from retclip_pipeline.training import trainer as train

    whole = _profile(tmp_path, demo_root, {"best_metric": "val_loss"}, "whole.toml", "whole")
    run(whole, whole.workdir_path(), lambda e: None)
    expected = torch.load(RunLayout.of(whole).best, weights_only=True)

    # Killed between epoch 1's epoch_latest.pt and its best.pt: the rerun's restore writes it.
    cut = _profile(tmp_path, demo_root, {"best_metric": "val_loss"}, "cut.toml", "cut")
    layout = RunLayout.of(cut)
    original_keep = checkpoint.keep_best

    def killed(layout):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "keep_best", killed)
    with pytest.raises(StageInterrupted):
        run(cut, cut.workdir_path(), lambda e: None)
    assert not layout.best.exists()
    monkeypatch.setattr(checkpoint, "keep_best", original_keep)

    original_step = train.Trainer.optimizer_step
    steps_per_epoch = _history(layout)[0]["step"]

    def stop_in_epoch_three(self):
        original_step(self)
        if self.progress.step == 2 * steps_per_epoch + 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.Trainer, "optimizer_step", stop_in_epoch_three)
    with pytest.raises(StageInterrupted):
        run(cut, cut.workdir_path(), lambda e: None)
    assert layout.best.exists()  # rewritten on resume, then kept by epoch 2
    stopped = torch.load(layout.latest, weights_only=True)
    assert stopped["progress"]["best"] is not None and stopped["progress"]["epoch"] == 2
    monkeypatch.setattr(train.Trainer, "optimizer_step", original_step)

    run(cut, cut.workdir_path(), lambda e: None)
    resumed = torch.load(layout.best, weights_only=True)
    assert resumed["best"] == expected["best"]
    assert resumed["best"]["metric"] == "val_loss"
    assert resumed["best"]["value"] == min(m["val_loss"] for m in _history(layout))
    for key, value in expected["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_the_disk_estimate_counts_what_is_kept(tmp_path, demo_root):
    profile = Profile()
    profile.train.epochs, profile.train.save_every = 30, 1
    profile.data.test_csv = ""
    assert kept_checkpoints(profile) == 2 + 30
    profile.data.test_csv = "test.csv"  # validated: best.pt too
    assert kept_checkpoints(profile) == 2 + 30 + 1
    profile.train.keep_last = 3
    assert kept_checkpoints(profile) == 2 + 3 + 1
    profile.train.keep_last = 50
    assert kept_checkpoints(profile) == 2 + 30 + 1

    def disk(keep_last):
        train = {"epochs": 30, "save_every": 1, "keep_last": keep_last}
        text = demo_toml(demo_root, workdir=str(tmp_path / "run"), train=train)
        path = write_profile(tmp_path, text)
        items = {i.name: i for i in run_checks(profiles.load(path), tmp_path / "run")}
        return items["disk space"].detail

    assert "33 checkpoints and the export" in disk(0)
    assert "5 checkpoints and the export" in disk(2)


def test_a_missing_tracker_package_is_one_line_naming_the_extra(tmp_path, demo_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(UserError, match=r"pip install 'retclip\[wandb\]'"):
        tracking.require(["tensorboard", "wandb"])
    path = write_profile(
        tmp_path,
        demo_toml(demo_root, workdir=str(tmp_path / "run"), train={"report_to": ["wandb"]}),
    )
    items = {i.name: i for i in run_checks(profiles.load(path), tmp_path / "run")}
    assert not items["trackers"].ok and "retclip[wandb]" in items["trackers"].detail

    profile = profiles.load(path)
    with pytest.raises(UserError, match=r"retclip\[wandb\]"):
        run(profile, profile.workdir_path(), lambda e: None)
    layout = RunLayout.of(profile)
    assert layout.lmdb.exists() and not layout.checkpoints.exists()  # before training


class _FakeWandbRun:
    def __init__(self, calls):
        self.calls = calls

    def log(self, values, step):
        self.calls.append(("log", step, dict(values)))

    def finish(self):
        self.calls.append(("finish",))


def _fake_modules(monkeypatch, calls):
    wandb = types.ModuleType("wandb")

    def init(**kwargs):
        calls.append(("init", kwargs))
        return _FakeWandbRun(calls)

    wandb.init = init
    mlflow = types.ModuleType("mlflow")
    mlflow.start_run = lambda run_name: calls.append(("start_run", run_name))
    mlflow.log_params = lambda params: calls.append(("log_params", params))
    mlflow.log_metrics = lambda values, step: calls.append(("log_metrics", step, dict(values)))
    mlflow.end_run = lambda: calls.append(("end_run",))
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)


def test_wandb_and_mlflow_behind_one_interface(tmp_path, monkeypatch):
    calls = []
    _fake_modules(monkeypatch, calls)
    profile = Profile(name="r", workdir=str(tmp_path / "run"))
    profile.train.report_to = ["wandb", "mlflow"]
    tracking.require(profile.train.report_to)
    layout = RunLayout.of(profile)
    parts = {name: torch.tensor(v) for name, v in (("patient", 1.0), ("left", 2.0), ("right", 3.0))}
    scales = (torch.tensor(10.0, requires_grad=True), torch.tensor(20.0), torch.tensor(30.0))
    with tracking.open_trackers(profile, layout, 0) as trackers:
        assert [type(t).__name__ for t in trackers.trackers] == ["WandbTracker", "MlflowTracker"]
        trackers.record(1, parts, lambda: [0.1], lambda: scales)
        trackers.record(2, parts, lambda: [0.2], lambda: scales)
        assert not [c for c in calls if c[0] in ("log", "log_metrics")]  # read when flushed
        trackers.flush(2, {"train/samples_per_s": 50.0})
        trackers.log_epoch({"epoch": 1, "step": 2, "train_loss": 6.0, "lr": 0.2, "val_loss": 4.0})
    init = next(c[1] for c in calls if c[0] == "init")
    assert init["name"] == "r" and init["dir"] == str(layout.wandb)
    assert init["config"]["train.report_to"] == ["wandb", "mlflow"]
    assert ("start_run", "r") in calls
    logs = [c for c in calls if c[0] == "log"]
    metrics = [c for c in calls if c[0] == "log_metrics"]
    assert [c[1] for c in logs] == [c[1] for c in metrics] == [1, 2, 2]
    first = logs[0][2]
    assert first["train/loss"] == 6.0 and first["train/lr"] == pytest.approx(0.1)
    assert first["train/loss_left"] == 2.0 and first["train/logit_scale_patient"] == 10.0
    assert logs[1][2]["train/samples_per_s"] == 50.0
    assert logs[2][2] == {"train/epoch_loss": 6.0, "train/epoch": 1, "val/loss": 4.0}
    assert calls[-2:] == [("finish",), ("end_run",)]


def test_trackers_close_when_training_stops(tmp_path, monkeypatch):
    calls = []
    _fake_modules(monkeypatch, calls)
    profile = Profile(name="r", workdir=str(tmp_path / "run"))
    profile.train.report_to = ["wandb"]
    parts = {name: torch.tensor(1.0) for name in ("patient", "left", "right")}
    scales = (torch.tensor(1.0),) * 3
    with (
        pytest.raises(KeyboardInterrupt),
        tracking.open_trackers(profile, RunLayout.of(profile), 0) as trackers,
    ):
        trackers.record(1, parts, lambda: [0.1], lambda: scales)
        raise KeyboardInterrupt
    assert [c[0] for c in calls] == ["init", "log", "finish"]  # the pending step logged


def test_the_tensorboard_line_names_the_folder(tmp_path):
    profile = Profile(name="r", workdir=str(tmp_path / "runs" / "r"))
    assert tracking.tensorboard_line(profile, tmp_path) == ""
    profile.train.report_to = ["tensorboard"]
    line = tracking.tensorboard_line(profile, tmp_path)
    assert line == "TensorBoard: tensorboard --logdir runs/r/tensorboard/r"


def test_the_train_screen_links_to_tensorboard_when_asked(tmp_path, monkeypatch, demo_root):
    import asyncio

    from . import test_tui

    home = test_tui.home.__wrapped__(tmp_path, monkeypatch, demo_root)
    profile = home / "profiles" / "tui.toml"
    text = profile.read_text(encoding="utf-8")
    lines = []

    async def walk():
        app = test_tui.make_app(home)
        async with app.run_test(size=(120, 40)) as pilot:
            app.goto("train")
            await pilot.pause()
            widget = app.screen.query_one("#tensorboard")
            lines.append((widget.display, test_tui.text_of(widget)))

    asyncio.run(walk())
    profile.write_text(text.replace("[train]\n", '[train]\nreport_to = ["tensorboard"]\n'))
    asyncio.run(walk())
    assert lines[0] == (False, "")
    assert lines[1] == (True, "TensorBoard: tensorboard --logdir runs/tui/tensorboard/tui")
