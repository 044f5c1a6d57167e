"""The wizard's App: the session, the step screens, and leaving with a run still going."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from retclip_pipeline import profile as profiles
from retclip_pipeline import runs

from .session import Session, demo_profile


class RetclipApp(App):
    CSS_PATH = "retclip.tcss"
    TITLE = "retclip"
    ENABLE_COMMAND_PALETTE = False  # its ctrl+p would shadow nothing we need, but hides keys
    BINDINGS = [Binding("ctrl+q", "leave", "Quit", priority=True)]

    def __init__(
        self, profile: Path | None = None, workdir: Path | None = None, attach: Path | None = None
    ):
        super().__init__()
        loaded = profiles.load(profile, check_files=False) if profile else demo_profile()
        if workdir:
            loaded.workdir = str(workdir.expanduser().resolve())
        self.session = Session(loaded)
        self.attach_to = attach

    def on_mount(self) -> None:
        if self.attach_to:
            self.attach(self.attach_to)
        else:
            self.goto("start")

    def goto(self, step: str) -> None:
        from .screens import make

        screen = make(step)
        if len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def attach(self, run_dir: Path) -> None:
        """Follow a run: its profile becomes the session's; the step its stages reached opens."""
        run_dir = run_dir.expanduser().resolve()
        for name in ("tui-profile.toml", runs.RESOLVED_PROFILE):
            if (run_dir / name).is_file():
                self.session.profile = profiles.load(run_dir / name, check_files=False)
                break
        else:
            self.notify(f"{run_dir} holds no run (no profile.resolved.toml)", severity="error")
            self.goto("start")
            return
        self.session.run_dir = run_dir
        info = runs.run_info(run_dir)
        stage = info.stage_running or next(
            (s for s in ("evaluate", "train", "lmdb", "convert") if s in info.stages), "convert"
        )
        self.goto({"convert": "prepare", "lmdb": "prepare"}.get(stage, stage))

    def action_leave(self) -> None:
        run_dir = self.session.run_dir or self.session.profile.workdir_path()
        if runs.lock_holder(run_dir):
            from .screens.leave import LeaveScreen

            def chosen(choice: str | None) -> None:
                if choice == "stop":
                    runs.stop(run_dir)
                if choice in ("stop", "leave"):
                    self.exit()

            self.push_screen(LeaveScreen(run_dir), chosen)
        else:
            self.exit()
