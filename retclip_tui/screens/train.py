"""Train: towers and hyperparameters, the device and the memory/time estimate, then live
curves (loss, validation), samples/s, ETA and the checkpoints written; stop and resume."""

from __future__ import annotations

import dataclasses
import re

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Sparkline, Static

from retclip_pipeline.layout import RunLayout
from retclip_pipeline.model.build import TINY, VISION_PRESETS
from retclip_pipeline.model.tokenizer import TEXT_PRESETS
from retclip_pipeline.units import duration
from retclip_pipeline.units import rate as per_time

from ..session import shown
from ..widgets.run_panel import RunLog
from ..widgets.tensorboard_line import TensorBoardLine
from .base import Field, dotted_key
from .running import RunningScreen

KNOBS = (
    ("model.vision", "image tower"),
    ("model.text", "text tower"),
    ("model.freeze", "freeze"),
    ("train.epochs", "epochs"),
    ("train.batch_size", "batch size"),
    ("train.lr", "learning rate"),
)
TOWERS_HINT = "towers: a preset (F1), a hub id or a folder"


class TrainScreen(RunningScreen):
    STEP = "train"
    STAGES = ("train",)
    RUNS = ("train", "evaluate")  # one start runs to the evaluation: leave it, it ends there
    HELP = f"""The towers, what to keep frozen, epochs, batch size and learning rate. Estimate
gives the memory and time these settings take on this machine's device. ctrl+g starts
training, then the evaluation, in one run that goes on if you leave; or resumes it from its
last step. The loss curves, the log and the checkpoints show as they come. ctrl+y stops after
the step under way and saves it. Tower presets: image {", ".join([TINY, *VISION_PRESETS])};
text {", ".join(TEXT_PRESETS)}; or a hub id or a local folder."""

    # The settings take their own height, each field's error under it (as on every screen);
    # the log takes what is left, so a taller terminal shows more of it.
    def body(self) -> ComposeResult:
        p = self.session.profile
        yield Static("", id="folder")
        # Two fields a row (three lines in all), in rows: Tab reads them as the eye does,
        # left to right, then down.
        with Vertical(id="knobs"):
            for pair in zip(KNOBS[:3], KNOBS[3:], strict=True):
                with Horizontal(classes="knob-row"):
                    for dotted, label in pair:
                        section, key = dotted.split(".")
                        yield Field(dotted, label, getattr(getattr(p, section), key))
        yield Static("", id="tower-hint", classes="hint")  # only when the prompts say so
        with Horizontal(id="estimate-row"):
            yield Button("Estimate", id="estimate", compact=True)
            yield Static("", id="device")

    def docked(self) -> ComposeResult:
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
        yield from super().docked()

    def on_mount(self) -> None:
        self.history_of = self.session.workdir  # the run folder the curves are of
        self.losses: list[float] = []
        self.vals: list[float] = []
        self.epochs = 0
        self.device_line = ""  # the device found; an estimate or its error shows in its place
        self.estimated = False
        self.show_curves()
        self.show_live("")
        self.show_later("#device", detect_device, show=self.show_device)
        self.query_one("#tower-hint", Static).display = False
        self.show_tower_hint(self.session.profile.model.text)

    def show_tower_hint(self, text_tower: str) -> None:
        """English prompts and a Chinese text tower (the default): an English one named
        under the towers (the CSV is read off the UI thread)."""
        p = self.session.profile
        profile = dataclasses.replace(p, model=dataclasses.replace(p.model, text=text_tower))
        self.show_later("#tower-hint", lambda: english_tower_hint(profile), show=self.hint)

    def show_folder(self) -> None:
        """The run folder in use (a new one once chosen), in view above the settings."""
        text = Text.assemble(("run folder: ", "bold"), shown(self.session.workdir), "   ")
        text.append(TOWERS_HINT, "dim")
        self.query_one("#folder", Static).update(text)

    def show_device(self, shown_text) -> None:
        self.device_line = shown_text
        if not self.estimated:
            self.query_one("#device", Static).update(shown_text)

    def confirmed_start(self, stages: list[str] | None = None) -> None:
        super().confirmed_start(stages)
        self.forget_estimate()  # the room goes to the curves and the log
        if self.session.workdir != self.history_of:  # a new run folder: none of the old run
            self.history_of = self.session.workdir
            self.forget_training()

    def forget_training(self) -> None:
        """No curve, epoch or checkpoint of a training before this one."""
        self.losses, self.vals, self.epochs = [], [], 0
        self.epoch_line = ""
        self.show_curves()
        self.show_live("")

    def on_input_changed(self, event: Input.Changed) -> None:
        if dotted_key(event.input.id or "") in dict(KNOBS):
            self.forget_estimate()  # made for other settings (or their error): said no more
        if dotted_key(event.input.id or "") == "model.text":
            self.show_tower_hint(event.value.strip())

    def hint(self, text) -> None:
        widget = self.query_one("#tower-hint", Static)
        widget.update(text)
        widget.display = bool(str(text))

    def forget_estimate(self) -> None:
        if not self.estimated:
            return
        self.estimated = False
        if self.device_line:
            self.workers.cancel_group(self, "#device")
            self.query_one("#device", Static).update(self.device_line)
        else:  # the estimate came before the device line: look again
            self.show_later("#device", detect_device, show=self.show_device)

    @on(Button.Pressed, "#estimate")
    def estimate_pressed(self) -> None:
        self.estimate()

    def estimate(self) -> None:
        if not self.apply_fields():
            return
        profile = self.session.profile

        def estimated() -> Text:  # offline: from cached configs, and said so
            from retclip_pipeline.preflight.check import estimate_lines

            lines, fits = estimate_lines(profile)
            return Text("\n".join(lines), "" if fits else "bold red")

        self.estimated = True
        self.show_later("#device", estimated, "looking at the device (imports torch)...")

    def on_run_panel_followed(self, message) -> None:
        event = message.event
        if event.stage != "train":
            return
        if event.kind == "stage_started" and "resuming" not in event.message:
            self.forget_training()  # a new training: fresh curves, no old epoch line
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
            pace = per_time(rate, "samples") if rate else ""  # 0.01 a second: 36 an hour
            if eta is not None:
                pace += f", ETA {duration(eta)} to the end of training"
            self.show_live(f"step {metrics.get('step')}: {pace}")
        self.show_curves()

    def show_checkpoints(self) -> None:
        """The last epoch's figures and the checkpoints written so far (an epoch's own is
        written just after its figures: listed from the next event on)."""
        folder = RunLayout.of(self.session.profile, self.session.workdir).checkpoints
        names = sorted((p.name for p in folder.glob("*.pt")), key=by_epoch)
        line = getattr(self, "epoch_line", "")
        listed = f"checkpoints: {', '.join(names[-4:])}" if names else "no checkpoint yet"
        self.show_live(f"{line}; {listed}" if line else listed)

    def show_live(self, text: str) -> None:
        live = self.query_one("#live", Static)
        live.update(Text(text))
        live.display = bool(text)

    def show_curves(self) -> None:
        """Each curve with its last value, its range and how many points it has; out of
        sight (the room to the log) until there is one."""
        self.query_one("#curves").display = bool(self.losses or self.vals)
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


def by_epoch(name: str) -> tuple[int, str]:
    """epoch9.pt before epoch10.pt; a name with no epoch (epoch_latest.pt) after them."""
    found = re.fullmatch(r"epoch(\d+)\.pt", name)
    return (int(found.group(1)), name) if found else (1 << 62, name)


def english_tower_hint(profile) -> str:
    """A line for the text tower field: the train CSV's prompts look English (nearly all
    ASCII letters) and the text tower's vocabulary is Chinese (chinese-roberta, the default).
    "" otherwise, or when the CSV cannot be read (the Data screen says why)."""
    import csv

    from retclip_pipeline.model.tokenizer import ENGLISH_PRESETS, text_language, vocab_language

    if vocab_language(profile.model.text) != "zh" or not profile.data.train_csv:
        return ""
    texts = []
    try:
        with open(profile.resolve(profile.data.train_csv), encoding="utf-8", newline="") as f:
            for number, record in enumerate(csv.DictReader(f)):
                if number >= 500:
                    break
                texts.append(str(record.get(profile.data.text_column) or ""))
    except (OSError, UnicodeDecodeError, csv.Error):
        return ""
    if text_language(texts) != "en":
        return ""
    return (
        f"the prompts look English, and {profile.model.text} has a Chinese vocabulary: "
        f"an English text tower fits them better ({', '.join(ENGLISH_PRESETS)})"
    )


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
        text = "device: CPU, no GPU found (fine for the demo and smoke sizes)"
    return text
