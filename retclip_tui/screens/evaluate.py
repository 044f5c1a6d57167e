"""Evaluate: run it, then the metrics, the per-class table, where the figures and report
are, other runs side by side; after a smoke run, its checklist and one key to go full size."""

from __future__ import annotations

import json

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Label, Static

from retclip_pipeline import watch
from retclip_pipeline.layout import RunLayout

from ..dialogs import Question
from ..session import run_labels, run_roots, shown
from ..widgets.run_panel import RunLog
from ..widgets.sweep_panel import SweepPanel
from .running import RunningScreen


class EvaluateScreen(RunningScreen):
    STEP = "evaluate"
    STAGES = ("evaluate",)
    HELP = """ctrl+g evaluates on the test split: retrieval recalls, zero-shot classification
and a linear probe, a per-class table, figures and a report in the run directory, and the
other runs side by side. After a smoke run, a checklist says whether every stage worked;
when it passes, ctrl+l reruns at full size with the same settings."""
    BINDINGS = [Binding("ctrl+l", "full_size", "Full-size run", show=False)]

    def body(self) -> ComposeResult:
        yield Static("", id="where")
        yield Label("Metrics", classes="heading")
        yield DataTable(id="metrics", zebra_stripes=True)
        yield Label("Per class (zero-shot)", classes="heading")
        yield DataTable(id="classes", zebra_stripes=True)
        yield Label("Runs compared", classes="heading")
        yield DataTable(id="compare", zebra_stripes=True)
        yield SweepPanel()
        yield Static("", id="checklist")
        with Horizontal(classes="buttons"):
            yield Button("Run at full size (ctrl+l)", id="full", disabled=True, compact=True)
        yield RunLog()

    def action_start_run(self) -> None:
        """Evaluating a training that has not finished says so first."""
        if self.already_running() or not self.before_start():
            return
        plan = {s.stage: s for s in watch.stage_states(self.session.profile, self.session.workdir)}
        train = plan.get("train")
        if train is None or train.status == "done":
            super().action_start_run()
            return
        at = watch.trained_outputs_any(self.session.profile, self.session.workdir)
        question = (
            f"The training is {train.status}"
            + (f" ({at.describe()})" if at else "")
            + ": evaluate its latest checkpoint anyway? (Train's ctrl+g finishes it first.)"
        )
        answers = [("evaluate", "Evaluate anyway", "e"), ("cancel", "Cancel", "c")]

        def answered(answer: str | None) -> None:
            if answer == "evaluate":
                RunningScreen.action_start_run(self)

        self.app.push_screen(Question(question, answers, "cancel"), answered)

    def already_running(self) -> bool:
        """While an earlier stage runs, the lock is held: the evaluation follows it."""
        info = watch.run_info(self.session.workdir)
        if info.running and info.stage_running not in (None, "evaluate"):
            self.show_error(f"{info.stage_running} is running: the evaluation follows it")
            return True
        return super().already_running()

    def on_mount(self) -> None:
        self.show_results()

    def on_run_panel_finished(self, message) -> None:
        self.show_results()

    def on_run_panel_followed(self, message) -> None:
        if message.event.kind in ("stage_started", "stage_finished", "stage_failed"):
            self.show_results()  # what the top line says follows the run

    @property
    def run_layout(self) -> RunLayout:
        return RunLayout.of(self.session.profile, self.session.workdir)

    def results(self) -> dict:
        path = self.run_layout.results
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def waiting(self) -> str:
        """What the top line says before there are results: never "evaluate now" while an
        earlier stage holds the run."""
        info = watch.run_info(self.session.workdir)
        if info.running and info.stage_running == "train":
            return "training is running: the evaluation follows when it ends"
        if info.running:
            return f"{info.stage_running or 'a run'} is running: ctrl+g evaluates once it ends"
        return "no evaluation yet: ctrl+g runs it"

    def show_results(self) -> None:
        results = self.results()
        for table in self.query(DataTable):  # another run folder's rows never stay
            table.clear(columns=True)
        if not results:
            self.query_one("#where", Static).update(self.waiting())
            self.show_compare()
            return
        layout = self.run_layout
        where = Text(f"report: {shown(layout.report)}\nfigures: {shown(layout.evaluation)}/*.png")
        verdict = self.show_checklist()
        if verdict is not None:  # in view at the top of the screen
            where.append("\n")
            where.append_text(verdict)
        self.query_one("#where", Static).update(where)
        table = self.query_one("#metrics", DataTable)
        table.clear(columns=True)
        table.add_column("metric", width=36)
        table.add_column("value", width=8)
        retrieval = results.get("retrieval", {})
        for level in ("instance", "class"):
            for direction, values in retrieval.get(level, {}).items():
                if isinstance(values, dict):
                    for key in ("R@1", "R@5", "mean_recall"):
                        if key in values:
                            table.add_row(f"{level} {direction} {key}", f"{values[key]:.3f}")
            if "mean_recall_all" in retrieval.get(level, {}):
                mean = retrieval[level]["mean_recall_all"]
                table.add_row(f"{level} mean of the six recalls", f"{mean:.3f}")
        for source, result in _zero_shot(results).items():
            for key in ("accuracy", "balanced_accuracy", "macro_f1"):
                if key in result:
                    table.add_row(f"zero-shot ({source}) {key}", f"{result[key]:.3f}")
        for key, value in results.get("linear_probe", {}).items():
            if isinstance(value, float):
                table.add_row(f"linear probe {key}", f"{value:.3f}")
        self.show_classes(results)
        self.show_compare()

    def show_classes(self, results: dict) -> None:
        table = self.query_one("#classes", DataTable)
        table.clear(columns=True)
        zero_shot = _zero_shot(results)
        source = next(iter(zero_shot), None)
        per_class = zero_shot[source].get("per_class", {}) if source else {}
        if not per_class:
            return
        keys = [
            k
            for k in next(iter(per_class.values()))
            if k in ("precision", "recall", "f1", "support")
        ]
        table.add_column(f"class ({source})", width=32)
        for key in keys:
            table.add_column(key, width=max(9, len(key)))
        for name, values in per_class.items():
            table.add_row(name[:30], *[_fmt(values.get(k)) for k in keys])

    def show_compare(self) -> None:
        from retclip_pipeline.evaluation.compare import COLUMNS, row

        table = self.query_one("#compare", DataTable)
        table.clear(columns=True)
        titles = [t for t, _ in COLUMNS if t not in ("checkpoint", "towers")][:6]
        for title in titles:
            table.add_column(title, width=max(len(title), 16 if title == "run" else 6))
        runs = [
            info
            for info in watch.find_runs(*run_roots(self.session))
            if RunLayout.of_folder(info.workdir).results.exists()
        ]
        for info, label in zip(runs, run_labels(runs), strict=True):  # same names: folders
            values = row(info.workdir) | {"run": label}
            table.add_row(*[_fmt(values.get(t, "")) for t in titles])

    def show_checklist(self) -> Text | None:
        """The smoke run's checklist below; its verdict returned for the top line."""
        from retclip_pipeline.preflight.smoke import checklist

        smoke = self.session.profile.sizing.mode == "smoke"
        self.query_one("#full", Button).display = smoke  # a full run has no full-size rerun
        if not smoke:
            return None
        items = checklist(self.session.workdir)
        text = Text("Smoke run checklist\n", "bold")
        for item in items:
            ok = item.ok
            text.append(" pass " if ok else " FAIL ", "bold green" if ok else "bold red")
            text.append(f" {item.name}: {item.detail}\n")
        passed = all(item.ok for item in items)
        verdict = (
            Text("smoke checklist: all passed: ctrl+l runs the same settings at full size", "green")
            if passed
            else Text(
                f"smoke checklist: {sum(not i.ok for i in items)} failed (below): fix them "
                "before a full run",
                "red",
            )
        )
        self.query_one("#checklist", Static).update(text)
        self.query_one("#full", Button).disabled = not passed
        return verdict

    @on(Button.Pressed, "#full")
    def full_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_full_size()

    def action_full_size(self) -> None:
        """The smoke run's settings at full size (the core's `promote`), in a run folder of
        its own; every stage of it starts at once, to the evaluation."""
        from retclip_pipeline import profile as profiles
        from retclip_pipeline.cli.promote import promote
        from retclip_pipeline.errors import UserError

        session = self.session
        why = self.no_full_size()
        if why:  # said, not silent
            self.app.notify(why, severity="warning")
            return
        try:
            path = promote(session.workdir)
            session.profile = profiles.load(path, check_files=False)
            session.run_dir = session.profile.workdir_path()
            pid = watch.start_detached(path, session.run_dir, env=session.env())
        except (UserError, OSError) as exc:
            self.show_error(f"cannot start the full-size run: {exc}")
            return
        session.pid = pid
        self.app.goto("prepare")
        self.app.notify(
            f"full-size run started in {shown(session.run_dir)} (pid {pid}): every stage, "
            "to the evaluation; you may leave, it goes on"
        )

    def no_full_size(self) -> str:
        """Why ctrl+l does nothing here ("" when it starts the full-size run)."""
        from retclip_pipeline.cli.promote import full_profile

        mode = self.session.profile.sizing.mode
        where = shown(self.session.workdir)
        if mode == "full":
            return f"ctrl+l: the run in {where} is already the full-size run: nothing to start"
        if mode != "smoke":
            return f"ctrl+l: the run in {where} is a {mode} run: only a smoke run has a full rerun"
        if self.query_one("#full", Button).disabled:
            return "ctrl+l: the smoke checklist has not passed yet (see above): evaluate first"
        try:
            target = full_profile(self.session.workdir).workdir_path()
        except Exception:  # noqa: BLE001 - promote itself says what is wrong
            return ""
        if RunLayout(target).events.exists() or watch.run_info(target).running:
            return (
                f"ctrl+l: the full-size run is already started in {shown(target)}: "
                "attach to it from the Start screen"
            )
        return ""


def _zero_shot(results: dict) -> dict[str, dict]:
    """Zero-shot results by class-embedding source (templates, train prompts)."""
    zero_shot = results.get("zero_shot", {})
    return {k: v for k, v in zero_shot.items() if isinstance(v, dict) and "accuracy" in v}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
