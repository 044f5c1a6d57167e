"""Fingerprints name inputs by what they are, not where they are: a moved or copied project
folder (profile, local data set, CSVs, towers, run folder) reruns nothing, and a changed
input still makes what depends on it stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from retclip_pipeline import profile as profiles
from retclip_pipeline.fingerprint import folder_identity
from retclip_pipeline.layout import RunLayout
from retclip_pipeline.ownership import HEADER
from retclip_pipeline.runner import fingerprints, plan, run
from retclip_pipeline.state import RunState

from .conftest import demo_toml, write_profile

STAGES = ["convert", "lmdb", "train", "evaluate"]


def _project(folder: Path, demo_root: Path) -> Path:
    """A project folder as a user keeps one: the profile beside the data set, the CSVs in
    it and the run folder, every path in the profile relative to the profile's folder."""
    shutil.copytree(demo_root, folder / "set")
    return write_profile(folder, demo_toml(Path("set"), workdir="run"))


def _statuses(profile) -> dict[str, str]:
    return {row.stage.name: row.status for row in plan(profile, profile.workdir_path())}


def _dry_run(profile) -> str:
    import contextlib
    import io

    from retclip_pipeline.cli.run import _dry_run as dry_run

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        dry_run(profile, profile.workdir_path(), None, None)
    return " ".join(out.getvalue().split())


def _stamps(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        path.relative_to(folder).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_moved_project_folder_reruns_nothing_and_a_changed_image_reruns(tmp_path, demo_root):
    profile = profiles.load(_project(tmp_path / "here" / "proj", demo_root))
    run(profile, profile.workdir_path(), lambda event: None)
    evaluation = RunLayout.of(profile, profile.workdir_path()).evaluation
    before = _stamps(evaluation)
    assert before
    # What it says holds no path of where the project was (the checkpoint is run-relative).
    here = str(tmp_path / "here").encode()
    assert [name for name, (data, _) in before.items() if here in data] == []

    shutil.move(tmp_path / "here", tmp_path / "there")
    moved = profiles.load(tmp_path / "there" / "proj" / "profile.toml")
    assert moved.workdir_path() == tmp_path / "there" / "proj" / "run"
    assert _statuses(moved) == dict.fromkeys(STAGES, "done")
    printed = _dry_run(moved)  # what --dry-run says would run agrees
    assert all(f"{name} done" in printed for name in STAGES), printed
    events = []
    run(moved, moved.workdir_path(), events.append)
    ran = [(e.stage, e.kind) for e in events if e.stage != "run"]
    assert ran == [(name, "stage_skipped") for name in STAGES]
    evaluation = RunLayout.of(moved, moved.workdir_path()).evaluation
    assert _stamps(evaluation) == before  # not rewritten: same bytes, same times

    # One image of the data set replaced: the conversion and all that reads it are stale.
    images = sorted((tmp_path / "there" / "proj" / "set" / "test").rglob("*.jpg"))
    other = sorted((tmp_path / "there" / "proj" / "set" / "train").rglob("*.jpg"))[0]
    assert images[0].stat().st_size != other.stat().st_size
    shutil.copyfile(other, images[0])
    assert _statuses(moved) == dict.fromkeys(STAGES, "stale")
    assert "convert stale (settings changed since it ran)" in _dry_run(moved)
    events = []
    run(moved, moved.workdir_path(), events.append, selected=["convert"])
    assert ("convert", "stage_finished") in [(e.stage, e.kind) for e in events]


def test_a_changed_csv_row_of_a_moved_project_makes_the_conversion_stale(tmp_path, demo_root):
    profile = profiles.load(_project(tmp_path / "a", demo_root))
    run(profile, profile.workdir_path(), lambda event: None, selected=["convert", "lmdb"])
    shutil.move(tmp_path / "a", tmp_path / "b")
    moved = profiles.load(tmp_path / "b" / "profile.toml")
    assert _statuses(moved) == {
        "convert": "done",
        "lmdb": "done",
        "train": "to run",
        "evaluate": "to run",
    }
    csv_path = moved.resolve(moved.data.train_csv)
    lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
    csv_path.write_text("".join(lines[:1] + lines[2:]), encoding="utf-8")  # one row fewer
    assert _statuses(moved)["convert"] == "stale"
    assert _statuses(moved)["lmdb"] == "stale"


def _tower(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"\0" * 4096)
    return folder


def test_a_local_tower_is_known_by_its_files_not_its_place(tmp_path, demo_root):
    """A tower folder named by an absolute path: moved (and the profile edited to the new
    place), training stays current; another config in it makes training stale."""
    tower = _tower(tmp_path / "one" / "vision", {"model_type": "clip", "hidden_size": 8})
    profile = profiles.load(write_profile(tmp_path, demo_toml(demo_root)))
    profile.model.vision = str(tower)
    prints = fingerprints(profile)
    shutil.move(tmp_path / "one", tmp_path / "two")
    profile.model.vision = str(tmp_path / "two" / "vision")
    assert fingerprints(profile) == prints
    (tmp_path / "two" / "vision" / "config.json").write_text(
        json.dumps({"model_type": "clip", "hidden_size": 16}), encoding="utf-8"
    )
    changed = fingerprints(profile)
    assert changed["convert"] == prints["convert"]
    assert changed["train"] != prints["train"]
    assert changed["evaluate"] != prints["evaluate"]


def test_folder_identity_reads_names_sizes_and_metadata_but_no_image(tmp_path, monkeypatch):
    root = tmp_path / "set"
    (root / "train" / "a").mkdir(parents=True)
    (root / "train" / "a" / "1.jpg").write_bytes(b"x" * 10)
    (root / "dataset_info.json").write_text('{"splits": 1}', encoding="utf-8")
    (root / ".cache").mkdir()
    (root / ".cache" / "stamp").write_text("1", encoding="utf-8")
    first = folder_identity(root)
    assert folder_identity(root) == first
    (root / ".cache" / "stamp").write_text("2", encoding="utf-8")  # hidden: a tool's own
    assert folder_identity(root) == first
    (root / "dataset_info.json").write_text('{"splits": 2}', encoding="utf-8")  # same size
    assert folder_identity(root) != first
    second = folder_identity(root)
    (root / "train" / "a" / "1.jpg").write_bytes(b"y" * 10)  # an image: only its size counts
    assert folder_identity(root) == second
    (root / "train" / "a" / "1.jpg").rename(root / "train" / "a" / "2.jpg")
    assert folder_identity(root) != second
    opened = []
    real_open = open

    def spy(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    folder_identity(root)
    assert "2.jpg" not in opened


def test_an_earlier_runs_fingerprints_still_count_and_are_brought_up_to_date(tmp_path, demo_root):
    """A run folder made before fingerprints named the data set by its content (its absolute
    path) is not rerun: its records are taken over once, and then the folder can move."""
    profile = profiles.load(_project(tmp_path / "here", demo_root))
    workdir = profile.workdir_path()
    run(profile, workdir, lambda event: None, selected=["convert", "lmdb"])
    state = RunState.load(workdir)
    old = fingerprints(profile, earlier=True)
    assert old["convert"] != fingerprints(profile)["convert"]
    for name in ("convert", "lmdb"):
        entry = state.stages[name]
        state.mark(name, "done", old[name], summary=entry.get("summary", {}))
    assert _statuses(profile)["convert"] == "done"
    events = []
    run(profile, workdir, events.append, selected=["convert", "lmdb"])
    assert [e.kind for e in events if e.stage != "run"] == ["stage_skipped"] * 2
    current = fingerprints(profile)
    assert RunState.load(workdir).stages["convert"]["fingerprint"] == current["convert"]
    shutil.move(tmp_path / "here", tmp_path / "there")
    moved = profiles.load(tmp_path / "there" / "profile.toml")
    assert _statuses(moved)["lmdb"] == "done"


def test_a_run_folder_inside_the_data_set_folder_is_not_part_of_it(tmp_path, demo_root):
    """What the run writes never makes its own conversion stale."""
    shutil.copytree(demo_root, tmp_path / "set")
    text = demo_toml(Path("."), workdir="run")  # the profile, CSVs and run in the set
    profile = profiles.load(write_profile(tmp_path / "set", text))
    prints = fingerprints(profile)
    (profile.workdir_path() / "data").mkdir(parents=True)
    (profile.workdir_path() / "data" / "train_imgs.tsv").write_text("0\tx\tx\n")
    assert fingerprints(profile) == prints
    other = tmp_path / "set" / "runs" / "earlier"  # another profile's run folder
    other.mkdir(parents=True)
    (other / "manifest.txt").write_text(f"{HEADER}\nstate.json\n", encoding="utf-8")
    (other / "state.json").write_text("{}", encoding="utf-8")
    assert fingerprints(profile) == prints
    (tmp_path / "set" / "notes.txt").write_text("a file of the set's own\n")
    assert fingerprints(profile)["convert"] != prints["convert"]


def test_a_training_cut_off_before_the_upgrade_resumes_from_its_checkpoint(tmp_path, demo_root):
    """Its record and its epoch_latest.pt carry the earlier version's fingerprint: the rerun
    goes on from the checkpoint, nothing is set aside."""
    import torch

    profile = profiles.load(_project(tmp_path / "here", demo_root))
    workdir = profile.workdir_path()
    run(profile, workdir, lambda event: None, selected=["convert", "lmdb", "train"])
    old = fingerprints(profile, earlier=True)
    state = RunState.load(workdir)
    for name in ("convert", "lmdb"):
        state.mark(name, "done", old[name], summary=state.stages[name].get("summary", {}))
    state.mark("train", "interrupted", old["train"])
    latest = RunLayout.of(profile, workdir).latest
    payload = torch.load(latest, weights_only=True)
    payload["fingerprint"] = old["train"]
    torch.save(payload, latest)
    rows = {row.stage.name: row for row in plan(profile, workdir)}
    assert (rows["train"].status, rows["train"].reason) == ("resume", "was interrupted")

    events = []
    run(profile, workdir, events.append, selected=["convert", "lmdb", "train"])
    said = [e.message for e in events if e.stage == "train"]
    assert any(m.startswith("resuming at epoch") for m in said), said
    assert not any("set aside" in m for m in said), said
    entry = RunState.load(workdir).stages["train"]
    assert entry["status"] == "done" and entry["fingerprint"] == fingerprints(profile)["train"]
    assert "earlier" not in entry
    assert torch.load(latest, weights_only=True)["step"] == payload["step"]  # not retrained
