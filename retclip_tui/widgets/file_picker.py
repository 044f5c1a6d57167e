"""A keyboard file picker: arrows and Enter in a directory tree that shows CSVs and folders."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Footer, Static


class CsvTree(DirectoryTree):
    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        # _safe_is_dir: an entry the OS will not describe is no folder, never an error
        return [p for p in paths if p.suffix.lower() in (".csv", ".toml") or self._safe_is_dir(p)]


class FilePicker(ModalScreen[Path | None]):
    BINDINGS = [
        Binding("ctrl+o", "cancel", "Cancel"),
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("backspace", "up", "Parent folder"),
    ]

    def __init__(self, start: Path, title: str = "Pick a CSV file"):
        super().__init__()
        self.start = start if CsvTree._safe_is_dir(start) else Path.cwd()
        self.title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"{self.title}: arrows move, Enter opens or picks, Backspace goes up")
            yield CsvTree(self.start, id="tree")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CsvTree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        # Any file at all: the screen that asked reads it and says what is wrong with it.
        self.dismiss(event.path)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_up(self) -> None:
        tree = self.query_one(CsvTree)
        with suppress(OSError, RuntimeError):  # a symlink loop above: stay where we are
            tree.path = Path(tree.path).resolve().parent
