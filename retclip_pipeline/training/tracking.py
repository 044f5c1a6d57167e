"""Experiment trackers (train.report_to): TensorBoard, Weights & Biases and MLflow behind one
small interface, a Tracker with log(step, values) and close(). Each is an optional extra; a
missing one is a one-line error before training starts. Only rank 0 opens any.

What is logged: per optimizer step the three losses (patient, left, right) and their sum,
the learning rate and the three temperatures (logit scales, as train/logit_scale_*);
samples/s when the trainer reports its rate; per epoch the train loss and every validation figure. The step values stay
on the device until they are logged (reading one waits for the GPU), at most every few
seconds, as the trainer's own metric events."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from ..errors import UserError

# The module each tracker needs, and the extra that installs it.
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


class Tracker(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def require(names: list[str]) -> None:
    """A one-line error naming the extra to install for a tracker whose package is missing."""
    for name in names:
        try:
            importlib.import_module(PACKAGES[name])
        except ImportError:
            raise UserError(
                f"train.report_to includes {name!r} but the {PACKAGES[name]} package is not "
                f"installed: pip install 'retclip[{name}]' (or remove it from train.report_to)"
            ) from None


class TensorBoardTracker:
    def __init__(self, folder: Path, resume_step: int):
        from torch.utils.tensorboard import SummaryWriter

        from .. import ownership

        ownership.claim(folder)  # ours whole
        folder.mkdir(parents=True, exist_ok=True)
        # purge_step: what an earlier process logged from this step on is dropped from view
        # (a resumed run logs those steps again; a fresh start logs everything anew).
        self.writer = SummaryWriter(str(folder), purge_step=resume_step)

    def log(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # a killed run keeps what was logged

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, name: str, config: dict[str, Any], folder: Path):
        import wandb

        from .. import ownership

        ownership.claim(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # The project and mode (online, offline) come from wandb's own settings (WANDB_*).
        self.run = wandb.init(name=name, config=config, dir=str(folder))

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, name: str, config: dict[str, Any]):
        import mlflow

        # Where runs go comes from mlflow's own settings (MLFLOW_TRACKING_URI).
        self.mlflow = mlflow
        self.run = mlflow.start_run(run_name=name)
        mlflow.log_params({k: str(v) for k, v in config.items()})

    def log(self, step: int, values: dict[str, float]) -> None:
        self.mlflow.log_metrics(values, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class Trackers:
    """The trackers of a run (none on other ranks), as one: step values kept on the device
    until flushed, epoch figures logged at once, everything closed on the way out."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers
        self.pending: list[tuple[int, dict[str, Any]]] = []

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, step: int, parts: dict[str, Any], lr, scales) -> None:
        """One optimizer step's losses (device tensors), learning rate and temperatures
        (`lr` and `scales` called only when there are trackers)."""
        if not self.trackers:
            return
        values: dict[str, Any] = {f"train/loss_{name}": v for name, v in parts.items()}
        values["train/loss"] = sum(parts.values())
        values["train/lr"] = lr()[0]
        for name, scale in zip(("patient", "left", "right"), scales(), strict=True):
            values[f"train/logit_scale_{name}"] = scale.detach()
        self.pending.append((step, values))

    def flush(self, step: int | None = None, extra: dict[str, float] | None = None) -> None:
        """Log the recorded steps, and `extra` at `step`."""
        pending, self.pending = self.pending, []
        if extra and step is not None:
            if pending and pending[-1][0] == step:
                pending[-1][1].update(extra)
            else:
                pending.append((step, dict(extra)))
        for at, values in pending:
            self.log(at, {k: float(v) for k, v in values.items()})

    def log(self, step: int, values: dict[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log(step, values)

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        """An epoch's line of metrics.jsonl: the train loss and every validation figure."""
        if not self.trackers:
            return
        self.flush()
        values = {"train/epoch_loss": metrics["train_loss"], "train/epoch": metrics["epoch"]}
        values |= {
            "val/" + k.removeprefix("val_"): v for k, v in metrics.items() if k.startswith("val_")
        }
        self.log(metrics["step"], values)

    def close(self) -> None:
        trackers = self.trackers
        try:
            self.flush()
        finally:
            self.trackers = []
            for tracker in trackers:
                tracker.close()


def open_trackers(profile, layout, step: int) -> Trackers:
    """The trackers train.report_to asks for (require() has checked their packages), for a
    run at optimizer step `step` (0, or where it resumes)."""
    name = profile.name
    config = {f"model.{k}": v for k, v in vars(profile.model).items()}
    config |= {f"train.{k}": v for k, v in vars(profile.train).items()}
    opened: list[Tracker] = []
    try:
        for tracker in profile.train.report_to:
            if tracker == "tensorboard":
                opened.append(TensorBoardTracker(layout.tensorboard, step))
            elif tracker == "wandb":
                opened.append(WandbTracker(name, config, layout.wandb))
            elif tracker == "mlflow":
                opened.append(MlflowTracker(name, config))
    except BaseException:
        for done in opened:
            done.close()
        raise
    return Trackers(opened)


def tensorboard_line(profile, here: Path, workdir: Path | None = None) -> str:
    """'TensorBoard: tensorboard --logdir <folder>' when train.report_to has tensorboard
    (the folder relative to `here` where it is inside), else ""."""
    import contextlib

    from ..layout import RunLayout

    if "tensorboard" not in profile.train.report_to:
        return ""
    folder = RunLayout.of(profile, workdir).tensorboard
    with contextlib.suppress(ValueError):
        folder = folder.relative_to(here)
    return f"TensorBoard: tensorboard --logdir {folder}"
