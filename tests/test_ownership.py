"""A user's file inside a folder the pipeline wrote whole (the training export, an LMDB
environment, convert's part files, set-aside outputs) is never deleted nor overwritten: once
such a folder is finished its files are listed in the manifest one by one, and a rebuild that
would replace or remove it stops first with one line naming the file, changing nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from retclip_pipeline import profile as profiles
from retclip_pipeline.errors import UserError
from retclip_pipeline.ownership import ForeignFile, Manifest, recording
from retclip_pipeline.runner import run

from .conftest import demo_toml, run_cli, write_profile

# The run's own bookkeeping, rewritten by every run whatever it does.
BOOKKEEPING = {"events.jsonl", "state.json", "profile.resolved.toml", "manifest.txt", "run.lock"}


def _copy(finished: Path, root: Path, tmp_path: Path, **train) -> tuple[profiles.Profile, Path]:
    """A private copy of the finished demo run (made from the demo set in `root`), and a
    profile of its settings (`train` changed) for it."""
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir)
    text = demo_toml(root, workdir=str(workdir), train=train or None)
    return profiles.load(write_profile(tmp_path, text)), workdir


def _snapshot(workdir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(workdir).as_posix(): p.read_bytes()
        for p in sorted(workdir.rglob("*"))
        if p.is_file() and p.relative_to(workdir).parts[0] not in BOOKKEEPING | {".receipts"}
    }


# (where the user's file is, the setting changed or None, whether --restart)
CASES = [
    ("logs/t/export/my_notes.txt", ("train", "lr", 0.001), False),
    ("logs/t/export/vision/my_notes.txt", None, True),
    ("lmdb/train/imgs/my_notes.txt", ("data", "image_size", 24), False),
    ("lmdb/test/pairs/README", None, True),
]


@pytest.mark.parametrize(("name", "change", "restart"), CASES)
def test_a_users_file_in_a_finished_folder_stops_its_rebuild_untouched(
    tmp_path, finished_demo, demo_root, name, change, restart
):
    profile, workdir = _copy(finished_demo, demo_root, tmp_path)
    if change:
        section, key, value = change
        setattr(getattr(profile, section), key, value)
    (workdir / name).write_text("the user's own")
    before = _snapshot(workdir)
    events: list = []
    with pytest.raises(UserError) as raised:
        run(profile, workdir, events.append, restart=restart)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{workdir / name} was not written")
    assert "move it out of" in message and "nothing was changed" in message
    assert _snapshot(workdir) == before  # the user's file, and every finished output
    assert not [e for e in events if e.kind == "stage_started"]  # refused before any stage


def test_the_run_goes_on_once_the_file_is_moved_out_and_lists_what_it_rebuilt(
    tmp_path, finished_demo, demo_root
):
    profile, workdir = _copy(finished_demo, demo_root, tmp_path, lr=0.001)
    notes = workdir / "logs/t/export/my_notes.txt"
    notes.write_text("the user's own")
    with pytest.raises(ForeignFile):
        run(profile, workdir, lambda event: None)
    notes.rename(tmp_path / "my_notes.txt")
    run(profile, workdir, lambda event: None)
    manifest = Manifest(workdir)
    assert "logs/t/export" in manifest.listed and "lmdb/train/imgs" in manifest.listed
    export = list((workdir / "logs/t/export").rglob("*"))
    assert export and all(p.relative_to(workdir).as_posix() in manifest.claimed for p in export)


def test_a_users_file_in_a_finished_folder_stays_when_nothing_is_redone(
    tmp_path, finished_demo, demo_root
):
    profile, workdir = _copy(finished_demo, demo_root, tmp_path)
    notes = workdir / "lmdb/train/imgs/my_notes.txt"
    notes.write_text("the user's own")
    events: list = []
    run(profile, workdir, events.append)
    assert sum(e.kind == "stage_skipped" for e in events) == 4
    assert notes.read_text() == "the user's own"


def test_the_cli_says_it_in_one_line_with_exit_2(tmp_path, finished_demo, demo_root):
    profile, workdir = _copy(finished_demo, demo_root, tmp_path)
    notes = workdir / "lmdb/train/pairs/my_notes.txt"
    notes.write_text("the user's own")
    before = _snapshot(workdir)
    path = tmp_path / "profile.toml"
    result = run_cli("--profile", str(path), "--stages", "lmdb", "--restart")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if str(notes) in line]
    assert len(lines) == 1 and "move it out of" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert _snapshot(workdir) == before


# -- the manifest itself -------------------------------------------------------------------


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_listed_folder_owns_only_its_claimed_files(tmp_path):
    written = Manifest(tmp_path)
    folder = tmp_path / "export"
    written.claim_folder(folder, ["a.bin", "vision/", "vision/config.json"])
    ours = [_write(folder / "a.bin"), _write(folder / "vision/config.json")]
    mine = [_write(folder / "notes.txt"), _write(folder / "vision/notes.txt")]
    _write(tmp_path / ".export.building/x")  # a build beside it: ours whole
    again = Manifest(tmp_path)  # as read back from manifest.txt
    for manifest in (written, again):
        assert all(manifest.owns(p) for p in ours) and not any(manifest.owns(p) for p in mine)
        assert manifest.owns(folder) and manifest.owns(tmp_path / ".export.building")
        assert manifest.intruder(folder) == (mine[0], folder)
        assert manifest.intruder(folder / "a.bin") == (mine[0], folder)  # inside it
        assert manifest.intruder(tmp_path) == (mine[0], folder)  # around it
    mine[0].unlink()
    assert again.intruder(folder) == (mine[1], folder)
    again.remove(folder)  # ours only, and the folders it leaves empty
    again.remove(tmp_path / ".export.building")
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ["export", "export/vision", "export/vision/notes.txt", "manifest.txt"]


def test_a_folder_of_an_old_manifest_is_ours_whole_and_listing_it_keeps_that(tmp_path):
    # A manifest written before listings claimed the folder alone: all it holds is ours, as
    # it was then, and stays ours once the folder is listed.
    from retclip_pipeline.ownership import HEADER

    (tmp_path / "manifest.txt").write_text(f"{HEADER}\nlmdb/train/imgs\n")
    env = tmp_path / "lmdb/train/imgs"
    files = [_write(env / "data.mdb"), _write(env / "lock.mdb"), _write(env / "sub/x")]
    manifest = Manifest(tmp_path)
    assert all(manifest.owns(p) for p in files) and manifest.intruder(env) is None
    manifest.claim_folder(env)
    manifest = Manifest(tmp_path)
    assert "lmdb/train/imgs" in manifest.listed
    assert all(manifest.owns(p) for p in files) and manifest.intruder(env) is None
    _write(env / "README")
    assert manifest.intruder(env) == (env / "README", env)


def test_a_kill_before_the_listing_line_leaves_the_folder_ours_whole(tmp_path):
    # The folder's line, then its files', then the "/" line: cut anywhere before that last
    # line, the folder is still ours whole, and nothing of ours looks like a user's.
    manifest = Manifest(tmp_path)
    manifest.claim_folder(tmp_path / "export", ["a.bin"])
    lines = (tmp_path / "manifest.txt").read_text().splitlines()
    assert lines[-1] == "export/"
    (tmp_path / "manifest.txt").write_text("\n".join(lines[:-1]) + "\n")
    _write(tmp_path / "export/a.bin")
    _write(tmp_path / "export/b.bin")  # written by the build, before its listing
    cut = Manifest(tmp_path)
    assert cut.owns(tmp_path / "export/b.bin") and cut.intruder(tmp_path / "export") is None


def test_a_replaced_folder_has_its_build_claimed_first_and_refuses_a_users_file(tmp_path):
    from retclip_pipeline.atomic import replace_dir

    dest, build = tmp_path / "env", tmp_path / ".env.copy"
    with recording(tmp_path) as manifest:
        manifest.claim_folder(dest)
        _write(build / "data.mdb", "one")
        replace_dir(build, dest)
        assert manifest.owns(dest / "data.mdb") and "env/data.mdb" in Manifest(tmp_path).claimed
        _write(dest / "README", "the user's own")
        _write(build / "data.mdb", "two")
        with pytest.raises(ForeignFile, match=r"README was not written by this pipeline"):
            replace_dir(build, dest)
    assert (dest / "data.mdb").read_text() == "one" and (dest / "README").exists()


def test_set_aside_outputs_are_listed_and_a_users_file_there_stays(tmp_path):
    from retclip_pipeline.training.checkpoint import discard_superseded, set_aside

    class Emit:
        def warn(self, text):
            pass

        log = warn

    training = tmp_path / "logs/t"
    with recording(tmp_path) as manifest:
        manifest.claim(training / "checkpoints/epoch1.pt")
        manifest.claim_folder(training / "export", ["a.bin"])
        _write(training / "checkpoints/epoch1.pt")
        _write(training / "export/a.bin")
        aside = set_aside(training, tmp_path, set(), Emit())
        assert aside is not None and (aside / "logs/t/export/a.bin").exists()
        mine = _write(aside / "logs/t/my_notes.txt", "the user's own")
        discard_superseded(aside, Emit())
    assert [p for p in aside.rglob("*") if p.is_file()] == [mine]


def test_a_users_file_among_convert_parts_stops_a_rerun(tmp_path, demo_root):
    text = demo_toml(demo_root, workdir=str(tmp_path / "run"))
    profile = profiles.load(write_profile(tmp_path, text))
    workdir = tmp_path / "run"
    with recording(workdir) as manifest:  # as a convert killed after its first split's folder
        parts = workdir / "data/.parts/f00"
        manifest.claim_folder(parts, ["train/"])
    (parts / "train").mkdir(parents=True)
    assert Manifest(workdir).intruder(workdir / "data/.parts") is None  # empty, but ours
    notes = _write(parts / "train/my_notes.txt", "the user's own")
    with pytest.raises(ForeignFile) as raised:
        run(profile, workdir, lambda event: None, selected=["convert"])
    assert str(raised.value).startswith(f"{notes} was not written")
    assert notes.read_text() == "the user's own"
    assert sorted(os.listdir(workdir / "data")) == [".parts"]


def test_an_old_run_folder_is_listed_at_its_first_run_and_guards_what_comes_later(
    tmp_path, finished_demo, demo_root
):
    # A manifest of before listings: the export and the LMDB environments claimed whole.
    profile, workdir = _copy(finished_demo, demo_root, tmp_path)
    manifest = workdir / "manifest.txt"
    lines = manifest.read_text().splitlines()
    listed = [line[:-1] for line in lines if line.endswith("/")]
    assert "logs/t/export" in listed and "lmdb/train/imgs" in listed
    manifest.write_text(
        "\n".join(
            line
            for line in lines
            if not line.endswith("/") and not any(line.startswith(f"{f}/") for f in listed)
        )
        + "\n"
    )
    early = workdir / "logs/t/export/early.txt"  # there before: ours, as the folder was
    early.write_text("old")
    assert Manifest(workdir).owns(early) and not Manifest(workdir).listed
    events: list = []
    run(profile, workdir, events.append)  # nothing to redo; its folders are listed now
    assert sum(e.kind == "stage_skipped" for e in events) == 4
    now = Manifest(workdir)
    assert {"logs/t/export", "lmdb/train/imgs", "lmdb/test/pairs"} <= now.listed
    files = [p for p in (workdir / "lmdb").rglob("*") if p.is_file()]
    assert files and all(now.owns(p) for p in files) and now.owns(early)
    notes = workdir / "lmdb/train/imgs/my_notes.txt"
    notes.write_text("the user's own")
    profile.data.image_size = 24
    with pytest.raises(ForeignFile, match="my_notes.txt was not written by this pipeline"):
        run(profile, workdir, events.append)
    assert notes.read_text() == "the user's own"
