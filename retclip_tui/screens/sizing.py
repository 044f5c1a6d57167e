"""Sizing: a 100-sample smoke test, the full set, or N samples, with what each costs in
disk, fetching and conversion time."""

from __future__ import annotations

import os

from textual.app import ComposeResult
from textual.widgets import Input, RadioButton, RadioSet, Static

from retclip_pipeline.errors import UserError

from ..widgets.run_panel import human
from .base import Field, WizardScreen, field_id

MODES = ("smoke", "full", "custom")
IMAGE_BYTES = 142_000  # the real set's average image (2.3 GB / 16,242)
CONVERT_PER_CORE = 125  # images/s a core, from bench/convert_bench.py on 2 cores (257/s)
LINK = 50e6  # bytes/s: the low end of a Colab or cloud link


class SizingScreen(WizardScreen):
    STEP = "sizing"
    HELP = """How much of the data set to use: smoke (100 samples: a quick check that every
stage works), full, or a number of your own. The estimate under the choice gives the disk,
the fetching and the conversion time it takes."""

    def body(self) -> ComposeResult:
        p = self.session.profile
        with RadioSet(id="mode"):
            yield RadioButton(
                "smoke: 100 samples, a check of every stage", p.sizing.mode == "smoke"
            )
            yield RadioButton("full: every sample", p.sizing.mode == "full")
            yield RadioButton("custom: the number below", p.sizing.mode == "custom")
        yield Field("sizing.samples", "samples", p.sizing.samples)
        yield Field("hub.fetch", "fetch", p.hub.fetch)
        yield Static("", id="estimate")

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()
        self.estimate()

    def mode(self) -> str:
        index = self.query_one(RadioSet).pressed_index
        return MODES[index] if index >= 0 else "full"

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.estimate()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == field_id("sizing.samples"):
            self.estimate()

    def estimate(self) -> None:
        from retclip_pipeline.check import estimate_output_bytes
        from retclip_pipeline.convert import plan_counts

        try:
            profile = self.session.profile
            samples = self.query_one("#" + field_id("sizing.samples"), Input).value
            trial = self.session.__class__(profile).update(
                {"sizing.mode": self.mode(), "sizing.samples": samples}
            )
            counts = plan_counts(trial)
        except UserError as exc:
            self.query_one("#estimate", Static).update(f"no estimate yet: {exc}")
            return
        images = sum(c["sampled"] for c in counts.values())
        available = sum(c["images"] for c in counts.values())
        lines = [
            ", ".join(f"{name}: {c['sampled']} of {c['images']}" for name, c in counts.items()),
            f"disk: about {human(estimate_output_bytes(trial, images), 'B')} in the run directory",
            f"conversion: about {images / (CONVERT_PER_CORE * (os.cpu_count() or 1)):.0f} s "
            f"on {os.cpu_count()} cores",
        ]
        kind, _ = trial.dataset_source()
        if kind == "hub":
            from retclip_pipeline.hub_parquet import fetch_mode

            mode = fetch_mode(trial)
            fetched = available * IMAGE_BYTES
            if mode == "stream":
                # Row groups of 100 rows: a smoke run reads about two a class.
                fetched = min(fetched, images * IMAGE_BYTES * (25 if images <= 200 else 1.1))
            lines.append(
                f"fetch ({mode}): about {human(fetched, 'B')}, {fetched / LINK:.0f} s at 50 MB/s "
                "(nothing if already in the hub cache)"
            )
        else:
            lines.append("fetch: none (a local data set)")
        self.query_one("#estimate", Static).update("\n".join(lines))

    def commit(self) -> bool:
        return self.apply_fields({"sizing.mode": self.mode()})
