"""The wizard's App: the session, the step screens, and leaving with a run still going
(what to type to attach again is printed once the terminal is back)."""

from __future__ import annotations

import shlex
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from retclip_pipeline import profile as profiles
from retclip_pipeline import watch
from retclip_pipeline.layout import RESOLVED_PROFILE, TUI_PROFILE

from .session import Session, new_profile, save_target, shown


class RetclipApp(App[str | None]):
    """Returns a line for the normal terminal, or None."""

    CSS_PATH = "retclip.tcss"
    TITLE = "retclip"
    ENABLE_COMMAND_PALETTE = False  # its ctrl+p would shadow nothing we need, but hides keys
    # F10 first: a browser keeps ctrl+q (Firefox). Screens list F10 in their own bindings
    # too, only to place Quit early in the footer; this priority binding is the one that acts.
    BINDINGS = [
        Binding("f10", "leave", "Quit", priority=True),
        Binding("ctrl+q", "leave", "Quit", show=False, priority=True),
    ]

    def __init__(
        self, profile: Path | None = None, workdir: Path | None = None, attach: Path | None = None
    ):
        super().__init__()
        # No profile named: a new one in this folder, never a checkout's demo and its run.
        loaded = profiles.load(profile, check_files=False) if profile else new_profile()
        if workdir:
            loaded.workdir = str(workdir.expanduser().resolve())
        self.session = Session(loaded)
        self.baseline = loaded  # what a profile with no file of its own started as
        self.attach_to = attach
        self.workdir_given = loaded.workdir if workdir else None  # not a change to save
        self.quitting = False  # the quit questions are open
        self.bad_fields_told = False  # F10 was refused once for fields that do not apply

    def on_mount(self) -> None:
        if not self.is_headless:
            from . import hangup

            hangup.watch(self)
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
        for name in (TUI_PROFILE, RESOLVED_PROFILE):
            if (run_dir / name).is_file():
                self.session.profile = profiles.load(run_dir / name, check_files=False)
                self.baseline = self.session.profile
                break
        else:
            self.notify(f"{run_dir} holds no run (no profile.resolved.toml)", severity="error")
            self.goto("start")
            return
        self.session.run_dir = run_dir
        info = watch.run_info(run_dir)
        stage = info.stage_running or next(
            (s for s in ("evaluate", "train", "lmdb", "convert") if s in info.stages), "convert"
        )
        self.goto({"convert": "prepare", "lmdb": "prepare"}.get(stage, stage))

    def action_leave(self) -> None:
        """Quit: first "save changes to <profile>?" when the settings differ from its file,
        then "leave it running?" when a run goes on (one just started included)."""
        if self.quitting:
            return  # F10 again while asked
        apply = getattr(self.screen, "apply_fields", None)
        if apply is not None and not apply() and not self.bad_fields_told:
            self.bad_fields_told = True  # a second F10 quits without them
            self.notify("fix the fields marked in red first, or F10 again to quit without them")
            return
        unsaved = self.unsaved()
        if unsaved is None:
            self.leave_run()
            return

        def answered(choice: str | None) -> None:
            self.quitting = False
            if choice == "save":
                try:
                    self.session.save(unsaved)
                except Exception as exc:  # noqa: BLE001 - said; the wizard stays open
                    self.notify(f"cannot save {shown(unsaved)}: {exc}", severity="error")
                    return
            if choice in ("save", "discard"):
                self.leave_run()

        from .dialogs import Question

        answers = [("save", "Save", "s"), ("discard", "Discard", "d"), ("cancel", "Cancel", "c")]
        self.quitting = True
        question = f"Save changes to {shown(unsaved)}?"
        self.push_screen(Question(question, answers, "save"), answered)

    def unsaved(self) -> Path | None:
        """The file a save would write (see save_target) when the session's settings differ
        from it, or, with no such file yet, from what the profile started as (a new profile,
        an attached run's); None when nothing would be lost."""
        path = save_target(self.session.profile)
        if not path.is_file():
            same = Session(self.baseline).save_text(path) == self.session.save_text(path)
            return None if same else path
        try:
            on_file = profiles.load(path, check_files=False)
        except Exception:  # noqa: BLE001 - a file that no longer loads: saving mends it
            return path
        if self.workdir_given:
            on_file.workdir = self.workdir_given
        return None if Session(on_file).save_text(path) == self.session.save_text(path) else path

    def leave_run(self) -> None:
        run_dir = self.session.run_dir or self.session.profile.workdir_path()
        pid = watch.running_pid(run_dir)  # a run just started has not taken its lock yet
        if not pid:
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            self.quitting = False
            if choice == "stop":
                watch.stop(run_dir)
                self.exit()
            elif choice == "leave":
                where = shlex.quote(shown(run_dir))
                process = f" (pipeline pid {pid})" if pid > 0 else ""
                self.exit(  # short lines: printed on a terminal of any width
                    f"The run goes on{process} in\n  {where}\nTo follow it again:\n"
                    f"  retclip-tui --attach {where}"
                )

        from .screens.leave import LeaveScreen

        self.quitting = True
        self.push_screen(LeaveScreen(run_dir), chosen)

    def get_key_display(self, binding: Binding) -> str:
        """F-keys as the keyboard and the README write them: F1, not f1."""
        key = binding.key
        if key.startswith("f") and key[1:].isdigit():
            return key.upper()
        return super().get_key_display(binding)

    def action_help_quit(self) -> None:
        """ctrl+c: Textual's hint names its own quit key; ours is F10."""
        self.notify("F10 quits (ctrl+q too, outside a browser)")
