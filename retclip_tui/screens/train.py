"""Train: towers and hyperparameters, the device and the memory/time estimate, then live
curves (loss, validation), samples/s, ETA and the checkpoints written; stop and resume."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Sparkline, Static

from retclip_pipeline.model.build import VISION_PRESETS
from retclip_pipeline.model.tokenizer import TEXT_PRESETS
from retclip_pipeline.units import duration

from ..widgets.run_panel import RunLog
from ..widgets.tensorboard_line import TensorBoardLine
from .base import Field
from .running import RunningScreen

KNOBS = (
    ("model.vision", "image tower"),
    ("model.text", "text tower"),
    ("model.freeze", "freeze"),
    ("train.epochs", "epochs"),
    ("train.batch_size", "batch size"),
    ("train.lr", "learning rate"),
)


class TrainScreen(RunningScreen):
    STEP = "train"
    STAGES = ("train",)
    RUNS = ("train", "evaluate")  # one start runs to the evaluation: leave it, it ends there
    HELP = f"""The towers, what to keep frozen, epochs, batch size and learning rate. The button
estimates memory and time on this machine's device. ctrl+g starts training, then the
evaluation, in one run that goes on if you leave; or resumes it from its last step. The
loss curves and checkpoints show as they come. ctrl+y stops after the step under way and
saves it. Tower presets: image {", ".join(VISION_PRESETS)}; text {", ".join(TEXT_PRESETS)};
or a hub id or a local folder."""

    def body(self) -> ComposeResult:
        p = self.session.profile
        yield Static("towers: a preset (F1 lists them), a hub id or a local folder", classes="hint")
        with Horizontal(id="knobs"):  # two columns: the settings take three lines at 80x24
            for column in (KNOBS[:3], KNOBS[3:]):
                with Vertical():
                    for dotted, label in column:
                        section, key = dotted.split(".")
                        yield Field(dotted, label, getattr(getattr(p, section), key))
        with Horizontal(classes="buttons"):
            yield Button("Estimate memory and time", id="estimate", compact=True)
        yield Static("", id="device")
        with Horizontal(id="curves"):
            with Vertical():
                yield Label("train loss", id="loss-label")
                yield Sparkline([], id="loss")
            with Vertical():
                yield Label("validation loss", id="val-label")
                yield Sparkline([], id="val")
        yield Static("", id="live")
        yield TensorBoardLine(id="tensorboard")
        yield RunLog()

    def on_mount(self) -> None:
        self.losses: list[float] = []
        self.vals: list[float] = []
        self.epochs = 0
        self.show_later("#device", detect_device)

    def on_button_pressed(self, event) -> None:
        if event.button.id == "estimate":
            self.estimate()

    def estimate(self) -> None:
        if not self.apply_fields():
            return
        profile = self.session.profile

        def estimated() -> Text:
            from retclip_pipeline.data.sampling import split_pairs
            from retclip_pipeline.preflight.estimate import estimate

            pairs = split_pairs(profile)
            result = estimate(profile, pairs["train"], test_pairs=pairs.get("test", 0))
            return Text("\n".join(result.lines()), "" if result.fits else "bold red")

        self.show_later("#device", estimated, "looking at the device (imports torch)...")

    def on_run_panel_followed(self, message) -> None:
        event = message.event
        if event.stage != "train":
            return
        if event.kind == "stage_started" and "resuming" not in event.message:
            self.losses, self.vals, self.epochs = [], [], 0  # a new training: fresh curves
            self.show_curves()
        metrics = event.metrics or {}
        if event.kind == "stage_finished":  # the last epoch's checkpoint is written now
            self.show_checkpoints()
        if event.kind != "metric":
            return
        if "train_loss" in metrics:  # an epoch ended
            self.epochs = int(metrics.get("epoch", self.epochs))
            if "val_loss" in metrics:
                self.vals.append(float(metrics["val_loss"]))
            self.epoch_line = f"epoch {metrics.get('epoch')}: train loss {metrics['train_loss']}"
            self.show_checkpoints()
        elif "loss" in metrics:
            self.losses.append(float(metrics["loss"]))
            rate, eta = metrics.get("samples_per_s"), metrics.get("eta_s")
            pace = f"{rate:.0f} samples/s" if rate else ""
            if eta is not None:
                pace += f", ETA {duration(eta)} to the end of training"
            self.query_one("#live", Static).update(Text(f"step {metrics.get('step')}: {pace}"))
        self.show_curves()

    def show_checkpoints(self) -> None:
        """The last epoch's figures and the checkpoints written so far (an epoch's own is
        written just after its figures: listed from the next event on)."""
        folder = self.session.workdir / "logs" / self.session.profile.name / "checkpoints"
        names = sorted(p.name for p in folder.glob("*.pt"))
        line = getattr(self, "epoch_line", "")
        shown = f"checkpoints: {', '.join(names[-4:])}" if names else "no checkpoint yet"
        self.query_one("#live", Static).update(Text(f"{line}; {shown}" if line else shown))

    def show_curves(self) -> None:
        """Each curve with its last value, its range and how many points it has."""
        self.query_one("#loss", Sparkline).data = self.losses[-200:]
        self.query_one("#val", Sparkline).data = list(self.vals)
        loss = "loss"
        if self.losses:
            recent = self.losses[-200:]
            loss += f" {recent[-1]:.3f} ({_range(recent)}, {len(self.losses)} logs)"
        self.query_one("#loss-label", Label).update(loss)
        val = "val loss"
        if self.vals:
            count = len(self.vals)
            val += f" {self.vals[-1]:.3f} ({_range(self.vals)}, {count} epoch{'s' * (count > 1)})"
        self.query_one("#val-label", Label).update(val)


def _range(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def detect_device() -> str:
    """The GPU and its memory, off the UI thread (importing torch takes seconds)."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        text = f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB"
        count = torch.cuda.device_count()
        text += f" ({count} GPUs: train with torchrun for all of them)" if count > 1 else ""
    else:
        text = "device: the CPU (no GPU found): fine for the demo and smoke sizes"
    text += ". The button estimates memory and time for these settings."
    return text
