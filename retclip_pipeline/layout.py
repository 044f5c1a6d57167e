"""Every path of a run folder, in one place: what each stage writes and reads, the run's own
bookkeeping, and the wizard's files. Readers and writers ask a RunLayout instead of spelling
paths, so the layout the README describes is the one the code uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The bookkeeping files' names, for code that has a folder but no profile (a watcher).
STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = "run.lock"
RESOLVED_PROFILE = "profile.resolved.toml"
LOG_FILE = "pipeline.log"  # a detached pipeline's own stdout and stderr
TUI_PROFILE = "tui-profile.toml"  # the profile the wizard hands a detached pipeline


def valid_name(name: str) -> bool:
    """A run's name, a folder under logs/: letters, digits, '.', '_' and '-', not starting
    with a dot: ".." named the run folder itself, and its training set the run's data
    aside as stale outputs."""
    return bool(re.fullmatch(r"[\w-][\w.-]*", name))


@dataclass(frozen=True)
class RunLayout:
    root: Path  # the run folder (the profile's workdir)
    name: str = ""  # the run's name, for the training paths: logs/<name>
    # Where data/ and lmdb/ live when another folder holds them (a sweep's shared data,
    # profile key data_dir); None: in the run folder.
    data_root: Path | None = None

    @classmethod
    def of(cls, profile, workdir: Path | None = None) -> RunLayout:
        return cls(Path(workdir or profile.workdir_path()), profile.name, profile.data_dir_path())

    @classmethod
    def of_folder(cls, root: Path) -> RunLayout:
        """A run folder alone: the run's name from its resolved profile (the folder's own
        name when it has none, as an unfinished or foreign folder may not)."""
        import tomllib

        root = Path(root)
        try:
            saved = tomllib.loads((root / RESOLVED_PROFILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            saved = {}
        name, data_dir = saved.get("name"), saved.get("data_dir")
        return cls(
            root,
            name if isinstance(name, str) and valid_name(name) else root.name,
            Path(data_dir) if isinstance(data_dir, str) and data_dir else None,
        )

    # -- the run's bookkeeping ----------------------------------------------------------------
    @property
    def state(self) -> Path:
        return self.root / STATE_FILE

    @property
    def receipts(self) -> Path:
        return self.root / ".receipts"

    @property
    def events(self) -> Path:
        return self.root / EVENTS_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.txt"

    @property
    def resolved_profile(self) -> Path:
        return self.root / RESOLVED_PROFILE

    @property
    def pipeline_log(self) -> Path:  # a detached pipeline's own output (the wizard starts it)
        return self.root / LOG_FILE

    @property
    def tui_profile(self) -> Path:  # the profile the wizard hands a detached pipeline
        return self.root / TUI_PROFILE

    @property
    def superseded(self) -> Path:
        return self.root / "superseded"

    @property
    def shares_data(self) -> bool:
        """Whether data/ and lmdb/ are another folder's (a sweep's shared conversion)."""
        return self.data_root is not None and self.data_root != self.root

    # -- convert ------------------------------------------------------------------------------
    @property
    def data(self) -> Path:
        return (self.data_root or self.root) / "data"

    def imgs_tsv(self, split: str) -> Path:
        return self.data / f"{split}_imgs.tsv"

    def texts_jsonl(self, split: str) -> Path:
        return self.data / f"{split}_texts.jsonl"

    def images_jsonl(self, split: str) -> Path:
        return self.data / f"{split}_images.jsonl"

    @property
    def convert_report(self) -> Path:
        return self.data / "convert_report.json"

    @property
    def convert_report_text(self) -> Path:
        return self.data / "convert_report.txt"

    @property
    def own_tokens(self) -> Path:
        """The prompts' token figures for this run's text tower, where data/ is shared."""
        return self.root / "tokens.json"

    @property
    def parts(self) -> Path:
        return self.data / ".parts"

    # -- lmdb ---------------------------------------------------------------------------------
    @property
    def lmdb(self) -> Path:
        return (self.data_root or self.root) / "lmdb"

    def lmdb_split(self, split: str) -> Path:
        return self.lmdb / split

    def lmdb_env(self, split: str, env: str) -> Path:
        return self.lmdb / split / env

    def lmdb_building(self, split: str, env: str) -> Path:
        return self.lmdb / ".building" / split / env

    # -- train --------------------------------------------------------------------------------
    @property
    def training(self) -> Path:
        return self.root / "logs" / self.name

    @property
    def checkpoints(self) -> Path:
        return self.training / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "epoch_latest.pt"

    @property
    def best(self) -> Path:  # the checkpoint of the best validation figure so far
        return self.checkpoints / "best.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch{epoch}.pt"

    @property
    def tensorboard(self) -> Path:  # `tensorboard --logdir runs/` finds every run's
        return self.root / "tensorboard" / self.name

    @property
    def wandb(self) -> Path:  # wandb's own files (its offline runs too)
        return self.root / "wandb"

    @property
    def metrics(self) -> Path:
        return self.training / "metrics.jsonl"

    @property
    def export(self) -> Path:
        return self.training / "export"

    # -- evaluate -----------------------------------------------------------------------------
    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    @property
    def results(self) -> Path:
        return self.evaluation / "evaluation_results.json"

    @property
    def report(self) -> Path:
        return self.evaluation / "report.md"

    def features(self, name: str) -> Path:
        """test_imgs, test_texts, train_imgs or class_embeddings."""
        return (
            self.evaluation / f"{name}.pt"
            if name == "class_embeddings"
            else (self.evaluation / f"{name}_features.pt")
        )

    # -- push ---------------------------------------------------------------------------------
    @property
    def model_card(self) -> Path:  # the card `push` sends as the repo's README.md
        return self.root / "model_card.md"

    # -- sweep (a grid of variants of this run's profile) -------------------------------------
    @property
    def sweep(self) -> Path:
        return self.root / "sweep"

    def sweep_variant(self, slug: str) -> Path:
        """A variant's own run folder."""
        return self.sweep / slug

    def sweep_data(self, fingerprint: str) -> Path:
        """The conversion and LMDB shared by the variants with these data settings."""
        return self.sweep / f"data-{fingerprint}"

    def sweep_table(self, suffix: str) -> Path:
        """The comparison table: .md, .csv or .json."""
        return self.sweep / f"sweep{suffix}"

    @property
    def sweep_figure(self) -> Path:
        return self.sweep / "sweep.png"

    @property
    def sweep_events(self) -> Path:
        return self.sweep / EVENTS_FILE


def check_apart(profile, workdir: Path) -> None:
    """A local data set and a run kept apart. A run folder (or its shared data folder)
    inside the data set's: the run's own files (figures, tables) would be read as the data
    set's on the next run. A data set inside one of the run's own folders (a parquet set in
    `data/`): the run writes its files among the data set's."""
    from .errors import UserError

    kind, where = profile.dataset_source() if profile is not None else ("hub", "")
    if kind != "local":
        return
    data_set, layout = Path(where).resolve(), RunLayout.of(profile, workdir)
    for folder in (layout.root, layout.data_root):
        if folder is not None and folder.resolve().is_relative_to(data_set):
            raise UserError(
                f"the run folder {folder} is inside the data set folder {data_set} "
                f"(hub.dataset): its own files would be read as the data set's; choose a "
                f"workdir outside it"
            )
    for folder in (layout.data, layout.lmdb, layout.training, layout.evaluation):
        if data_set.is_relative_to(folder.resolve()):
            raise UserError(
                f"the data set folder {data_set} (hub.dataset) is inside {folder}, where the "
                f"run writes its own files: move the data set out of the run folder, or "
                f"choose another workdir"
            )


def check_workdir(workdir: Path, profile=None) -> None:
    """The work directory can be written, and is kept apart from a local data set."""
    import os

    from .errors import UserError

    check_apart(profile, workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"cannot write to the work directory {workdir} ({exc.strerror}): "
            f"choose another with --workdir or the profile's workdir"
        ) from None
