"""What a log file gets: plain lines in human units, few of them, and no library chatter."""

from __future__ import annotations

import io
import warnings

from retclip_pipeline import console, units
from retclip_pipeline.events import Event


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _progress(done, total, unit, task="epoch 1/10", message=""):
    return Event("train", "progress", message, done=done, total=total, unit=unit, task=task)


def test_units_read_as_people_read_them():
    assert units.size(2_400_000_000) == "2.4 GB" and units.size(512) == "512 B"
    assert units.duration(4.2) == "4.2 s" and units.duration(3725) == "1:02:05"
    assert units.about(0.02) == "under 1 s" and units.about(38.4) == "about 38 s"
    assert units.rate(0.3, "batches") == "18.0 batches/min"
    assert units.rate(0.001, "batches") == "3.60 batches/h"
    assert units.rate(2.5e6, "B") == "2.5 MB/s" and units.rate(42, "images") == "42.0 images/s"
    assert units.amount(12989, "pairs") == "12,989 pairs" and units.amount(3e9, "bytes") == "3.0 GB"


def test_a_log_file_gets_one_line_per_10_s_and_5_percent_in_human_units(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    out = io.StringIO()
    render = console.PlainRenderer(out)
    for batch in range(0, 1001):  # a batch every 0.5 s: 500 s in all
        clock.now = 1000.0 + batch * 0.5
        render(_progress(batch, 1000, "batches"))
    lines = out.getvalue().splitlines()
    # The start, then no more than one per 10 s and per 5% (50 batches = 25 s), and the end.
    assert 15 <= len(lines) <= 22, lines
    assert lines[0] == "[train] epoch 1/10: 0 batches of 1,000 batches (0%)"
    assert "2.00 batches/s" in lines[3] and "ETA 0:0" in lines[3]
    assert lines[-1].startswith("[train] epoch 1/10: 1,000 batches of 1,000 batches (100%)")
    assert not any("0/s" in line.replace("100/s", "") for line in lines)


def test_slow_steps_never_show_as_zero_per_second(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    out = io.StringIO()
    render = console.PlainRenderer(out)
    for step in range(4):  # a step every 40 s, as real-size models take on a CPU
        clock.now = 1000.0 + 40 * step
        render(_progress(step, 3, "batches"))
    text = out.getvalue()
    assert "1.50 batches/min" in text and "0/s" not in text


def test_download_progress_is_in_bytes_units(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    out = io.StringIO()
    render = console.PlainRenderer(out)
    render(_progress(0, 2_400_000_000, "B", task="hub download"))
    clock.now += 20
    render(_progress(1_200_000_000, 2_400_000_000, "B", task="hub download"))
    last = out.getvalue().splitlines()[-1]
    assert last == ("[train] hub download: 1.2 GB of 2.4 GB (50%), 60.0 MB/s, ETA 20 s"), last


def test_a_note_change_is_shown_at_once(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    out = io.StringIO()
    render = console.PlainRenderer(out)
    render(_progress(0, 10, "B", task="hub download"))
    clock.now += 1
    render(_progress(0, 10, "B", task="hub download", message="rate limited: waiting 56 s"))
    assert "(rate limited: waiting 56 s)" in out.getvalue().splitlines()[-1]


def test_library_warnings_become_one_event_each():
    import logging

    from retclip_pipeline.quiet import library_messages

    shown = []
    with library_messages(shown.append):
        for _ in range(50):
            warnings.warn("use_reentrant should be passed explicitly", UserWarning, stacklevel=1)
            logging.getLogger("transformers.modeling_utils").warning("Some weights were not used")
    assert shown == [
        "UserWarning: use_reentrant should be passed explicitly",
        "Some weights were not used",
    ]


def test_a_failed_or_interrupted_stage_is_left_to_the_command():
    """The command prints the error (or the interruption) once, as its own line."""
    out = io.StringIO()
    render = console.PlainRenderer(out)
    render(Event("train", "stage_started", "RET-CLIP training"))
    render(Event("train", "stage_failed", "bad image", level="error"))
    render(Event("run", "run_finished", "failed: bad image", level="error"))
    render(Event("train", "stage_failed", "interrupted: rerun to resume", level="warning"))
    render(Event("run", "run_finished", "interrupted: rerun to resume", level="warning"))
    render(Event("run", "run_finished", "all stages done"))
    assert out.getvalue().splitlines() == ["[train] RET-CLIP training", "[run] all stages done"]
