"""Train: towers and hyperparameters, the device and the memory/time estimate, then live
curves (loss, validation), samples/s, ETA and the checkpoints written; stop and resume."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Sparkline, Static

from retclip_pipeline.model.build import VISION_PRESETS
from retclip_pipeline.model.tokenizer import TEXT_PRESETS

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
    HELP = """The towers, what to keep frozen, epochs, batch size and learning rate. The button
estimates memory and time on this machine's device. ctrl+g starts training, or resumes it
from its last step; the loss curves and checkpoints show as they come. ctrl+y stops after
the step under way and saves it."""

    def body(self) -> ComposeResult:
        p = self.session.profile
        yield Static(
            f"presets: image {', '.join(VISION_PRESETS)}; text {', '.join(TEXT_PRESETS)} "
            "(or a hub id / local folder)",
            classes="hint",
        )
        for dotted, label in KNOBS:
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
        yield self.panel()

    def on_mount(self) -> None:
        self.losses: list[float] = []
        self.vals: list[float] = []
        self.show_later("#device", detect_device)

    def on_button_pressed(self, event) -> None:
        if event.button.id == "estimate":
            self.estimate()

    def estimate(self) -> None:
        if not self.apply_fields():
            return
        profile = self.session.profile

        def estimated() -> Text:
            from retclip_pipeline.convert import split_pairs
            from retclip_pipeline.estimate import estimate

            pairs = split_pairs(profile)
            result = estimate(profile, pairs["train"], test_pairs=pairs.get("test", 0))
            return Text("\n".join(result.lines()), "" if result.fits else "bold red")

        self.show_later("#device", estimated, "looking at the device (imports torch)...")

    def on_run_panel_followed(self, message) -> None:
        event = message.event
        metrics = event.metrics or {}
        if event.kind != "metric" or event.stage != "train":
            return
        if "train_loss" in metrics:  # an epoch ended
            if "val_loss" in metrics:
                self.vals.append(float(metrics["val_loss"]))
                self.query_one("#val", Sparkline).data = list(self.vals)
                self.query_one("#val-label", Label).update(f"validation loss {self.vals[-1]:.3f}")
            checkpoints = sorted(p.name for p in self.session.workdir.rglob("checkpoints/*.pt"))
            self.query_one("#live", Static).update(
                f"epoch {metrics.get('epoch')}: train loss {metrics['train_loss']}; "
                f"checkpoints: {', '.join(checkpoints[-4:]) or 'none yet'}"
            )
        elif "loss" in metrics:
            self.losses.append(float(metrics["loss"]))
            self.query_one("#loss", Sparkline).data = self.losses[-200:]
            eta = metrics.get("eta_s")
            self.query_one("#loss-label", Label).update(
                f"loss {self.losses[-1]:.3f}, {metrics.get('samples_per_s', 0):.0f}/s"
                + (f", ETA {eta:.0f} s" if eta is not None else "")
            )


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
