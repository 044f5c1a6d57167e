"""The sweep command: a grid of variants that converts once per set of data settings, one
table (markdown, CSV, JSON, PNG), a rerun with nothing to do that trains nothing and imports
no torch; bad --vary input as one line; variants side by side on fake devices."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retclip_pipeline import profile as profiles
from retclip_pipeline import sweep as sweeps
from retclip_pipeline.errors import UserError
from retclip_pipeline.events import read_events
from retclip_pipeline.layout import RunLayout
from retclip_pipeline.profile_edit import grid

from .conftest import demo_toml, run_cli, write_profile
from .test_tui import home  # noqa: F401 - the wizard's user folder, a fixture

VARY = ("--vary", "train.lr=0.001,0.0005")


def _events(folder: Path, stage: str, kind: str) -> int:
    return sum(
        1 for e in read_events(folder / "events.jsonl") if (e.stage, e.kind) == (stage, kind)
    )


def test_two_variants_convert_once_print_one_table_and_rerun_with_nothing_to_do(demo_profile):
    result = run_cli("sweep", "--profile", str(demo_profile), *VARY)
    assert result.returncode == 0, result.stderr
    sweep = demo_profile.parent / "run" / "sweep"
    shared = sorted(sweep.glob("data-*"))
    variants = sorted(p for p in sweep.iterdir() if p.name.startswith("t-"))
    assert len(shared) == 1, shared
    assert [v.name for v in variants] == ["t-lr=0.0005", "t-lr=0.001"]
    # One conversion, in the shared folder; the variants skip it and hold no data of their own.
    assert _events(shared[0], "convert", "stage_finished") == 1
    assert _events(shared[0], "lmdb", "stage_finished") == 1
    for variant in variants:
        assert _events(variant, "convert", "stage_started") == 0
        assert _events(variant, "convert", "stage_skipped") == 1
        assert _events(variant, "evaluate", "stage_finished") == 1
        assert not (variant / "data").exists() and not (variant / "lmdb").exists()
        assert (variant / "evaluation" / "evaluation_results.json").exists()
        layout = RunLayout.of_folder(variant)
        assert layout.lmdb == shared[0] / "lmdb"
    assert result.stdout.count("instance mean recall") == 1  # one table, printed once
    assert "lr=0.001 " in result.stdout and "lr=0.0005 " in result.stdout

    table = json.loads((sweep / "sweep.json").read_text())
    assert [row["variant"] for row in table] == ["lr=0.001", "lr=0.0005"]
    for row in table:
        for title in ("instance mean recall", "class mean recall", "zero-shot acc"):
            assert 0.0 <= row[title] <= 1.0, row
        assert isinstance(row["zero-shot macro-F1"], float)
    markdown = (sweep / "sweep.md").read_text()
    assert markdown.startswith("| variant | towers | instance mean recall |")
    assert markdown.count("\n") == 4  # header, rule, two variants
    csv_lines = (sweep / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("variant,towers,") and len(csv_lines) == 3
    assert (sweep / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The rerun: nothing to do, so nothing trains, converts, or imports torch.
    again = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "retclip_pipeline", "sweep"]
        + ["--profile", str(demo_profile), *VARY],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert again.returncode == 0, again.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in again.stderr.splitlines()}
    assert "torch" not in imported
    assert again.stderr.count("done and current") == 2, again.stderr
    assert "[train]" not in again.stderr and "[convert]" not in again.stderr
    assert again.stdout.count("instance mean recall") == 1
    assert _events(shared[0], "convert", "stage_finished") == 1
    for variant in variants:
        assert _events(variant, "train", "stage_finished") == 1
    # A variant alone, as --devices runs it: its resolved profile, nothing left to do.
    alone = run_cli("--profile", str(variants[0] / "profile.resolved.toml"))
    assert alone.returncode == 0, alone.stderr
    assert alone.stderr.count("done and current") == 4, alone.stderr
    plan = run_cli("--profile", str(variants[0] / "profile.resolved.toml"), "--dry-run")
    assert plan.returncode == 0, plan.stderr  # outputs in the shared folder: named in full
    assert str(shared[0] / "data" / "train_imgs.tsv") in plan.stdout, plan.stdout


def test_bad_vary_is_one_line_naming_the_key(demo_profile):
    result = run_cli("sweep", "--profile", str(demo_profile), "--vary", "train.lrate=0.1,0.2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "train.lrate" in result.stderr, result.stderr
    assert not (demo_profile.parent / "run").exists()  # nothing written

    base = profiles.load(demo_profile)
    for vary, named in [
        ("train.lr=0.1,fast", "train.lr=fast: expected a number"),
        ("train.epochs=1,2.5", "train.epochs=2.5: expected a whole number"),
        ("model.freeze=none,sideways", "model.freeze=sideways: expected one of"),
        ("train.hflip=true,maybe", "train.hflip=maybe: expected yes or no"),
        ("train.batch_size=1,2", "train.batch_size=1: must be at least 2"),
        ("nonsense.key=1,2", "nonsense.key: unknown profile key"),
        ("train.lr", "'train.lr': expected KEY=V1,V2"),
        ("train.lr=", "train.lr: give the values"),
        ("workdir=a,b", "workdir: the sweep chooses each variant's workdir"),
        ("eval.templates=a,b", "eval.templates: a list or table key cannot be varied"),
        ("train.lr=0.1,0.1", "train.lr: the value '0.1' is given twice"),
    ]:
        with pytest.raises(UserError, match=f"^--vary {named}") as caught:
            grid(base, [vary])
        assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match="train.lr: the key is varied twice"):
        grid(base, ["train.lr=0.1,0.2", "train.lr=0.3"])


def test_grid_is_the_cartesian_product_typed_as_each_key(demo_profile):
    base = profiles.load(demo_profile)
    combos = grid(base, ["train.lr=1e-3,5e-4", "model.freeze=none,text", "train.hflip=yes"])
    assert combos == [
        {"train.lr": 0.001, "model.freeze": "none", "train.hflip": True},
        {"train.lr": 0.001, "model.freeze": "text", "train.hflip": True},
        {"train.lr": 0.0005, "model.freeze": "none", "train.hflip": True},
        {"train.lr": 0.0005, "model.freeze": "text", "train.hflip": True},
    ]


def test_folders_are_safe_names_and_data_settings_decide_sharing(tmp_path, demo_root):
    path = write_profile(tmp_path, demo_toml(demo_root, workdir="w"))
    base = profiles.load(path)
    text = "model.text=tiny,microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract"
    sweep = sweeps.build(base, [text, "data.image_size=32,48"])
    names = [v.layout.root.name for v in sweep.variants]
    assert names[:2] == ["t-text=tiny,image_size=32", "t-text=tiny,image_size=48"]
    assert names[2] == "t-text=microsoft_BiomedNLP-PubMedBERT-base-uncased-abstract,image_size=32"
    assert all(v.layout.root.parent == tmp_path / "w" / "sweep" for v in sweep.variants)
    # Two image sizes: two conversions, each shared by the two towers.
    assert len(sweep.data) == 2
    by_size = {v.profile.data.image_size: v.layout.data_root for v in sweep.variants}
    assert len(set(by_size.values())) == 2
    for variant in sweep.variants:
        assert variant.layout.data_root == by_size[variant.profile.data.image_size]
    lines = sweeps.dry_run(sweep)
    assert lines[0].startswith("sweep of t: 4 variants")
    assert sum("shared data data-" in line for line in lines) == 2
    assert not (tmp_path / "w").exists()  # a dry run writes nothing


def test_dry_run_from_the_command_line_changes_nothing(demo_profile):
    result = run_cli("sweep", "--profile", str(demo_profile), *VARY, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "2 variants" in result.stdout and "shared: to run" in result.stdout
    assert not (demo_profile.parent / "run").exists()


def test_a_variant_never_converts_into_the_shared_folder(tmp_path, demo_root):
    """Run directly, a variant whose shared data is missing refuses to write it."""
    path = write_profile(tmp_path, demo_toml(demo_root, workdir="variant"))
    profile = profiles.load(path)
    profile.data_dir = str(tmp_path / "shared")
    from retclip_pipeline.runner import run

    with pytest.raises(UserError, match="outside this run folder"):
        run(profile, tmp_path / "variant", lambda event: None)
    assert not (tmp_path / "shared").exists()


def _fake_variants(tmp_path: Path, count: int) -> list[sweeps.Variant]:
    out = []
    for number in range(count):
        profile = profiles.Profile(name="t", workdir=str(tmp_path / f"v{number}"))
        out.append(sweeps.Variant({"n": number}, f"v{number}", f"n={number}", profile, "k"))
    return out


# A stand-in for a variant's pipeline: it notes the device it was given, begin and end.
JOB = """
import os, sys
log = os.path.join(sys.argv[1], "device-" + os.environ["CUDA_VISIBLE_DEVICES"] + ".log")
with open(log, "a") as out:
    out.write("begin " + sys.argv[2] + "\\n")
with open(log, "a") as out:
    out.write("end " + sys.argv[2] + "\\n")
sys.exit(3 if sys.argv[2] == "v2" else 0)
"""


def test_devices_run_one_variant_each_at_a_time(tmp_path, monkeypatch):
    jobs = _fake_variants(tmp_path, 5)
    monkeypatch.setattr(
        sweeps,
        "subprocess_command",
        lambda variant: [sys.executable, "-c", JOB, str(tmp_path), variant.slug],
    )
    events = []
    codes = sweeps.schedule(jobs, ["0", "1"], events.append)
    assert codes == {"v0": 0, "v1": 0, "v2": 3, "v3": 0, "v4": 0}
    seen = []
    for device in ("0", "1"):
        lines = (tmp_path / f"device-{device}.log").read_text().splitlines()
        # One process at a time on a device: each begin is followed by its own end.
        assert lines[0::2] == [line.replace("end", "begin") for line in lines[1::2]]
        seen += [line.split()[1] for line in lines[0::2]]
    assert sorted(seen) == ["v0", "v1", "v2", "v3", "v4"]
    for job in jobs:  # each process's output went to its variant's pipeline.log
        assert job.layout.pipeline_log.exists()
    assert any("n=2: exit 3" in e.message and e.level == "error" for e in events)
    assert sum("started on device" in e.message for e in events) == 5


def test_bad_devices_are_one_line():
    assert sweeps.parse_devices(None) is None
    assert sweeps.parse_devices("0, 1") == ["0", "1"]
    for text in (",", "0,0", "0;1", "abc"):
        with pytest.raises(UserError, match="--devices"):
            sweeps.parse_devices(text)


def test_the_evaluate_screen_shows_the_sweep_table_when_there_is_one(home):  # noqa: F811
    import asyncio

    from retclip_pipeline.evaluation import sweep_table

    from .test_tui import make_app

    async def walk():
        app = make_app(home)
        async with app.run_test(size=(100, 40)) as pilot:
            app.goto("evaluate")
            await pilot.pause()
            panel = app.screen.query_one("SweepPanel")
            assert not panel.display  # no sweep in this run folder
            layout = RunLayout.of_folder(app.session.workdir)
            rows = [
                {"variant": "lr=0.001", "towers": "tiny + tiny", "zero-shot acc": 0.25},
                {"variant": "lr=0.0005", "towers": "tiny + tiny", "zero-shot acc": 0.5},
            ]
            layout.sweep.mkdir(parents=True)
            layout.sweep_table(".json").write_text(json.dumps(rows))
            panel.show(app.session.workdir)
            await pilot.pause()
            table = panel.query_one("DataTable")
            assert panel.display and table.row_count == 2
            assert [c.label.plain for c in table.columns.values()] == sweep_table.TITLES
            assert table.get_row_at(1)[:2] == ["lr=0.0005", "tiny + tiny"]
            assert table.get_row_at(1)[4] == "0.500"

    asyncio.run(walk())


def test_a_data_change_names_a_new_shared_folder_and_makes_variants_reconvert(demo_profile):
    """An edited CSV (or any data setting) gives a new data fingerprint: a new shared folder,
    converted afresh, and the variants point at it."""
    before = sweeps.build(profiles.load(demo_profile), ["train.lr=0.001,0.0005"])
    csv = Path(profiles.load(demo_profile).data.train_csv)
    csv.write_text(csv.read_text() + csv.read_text().splitlines()[1] + "\n")
    after = sweeps.build(profiles.load(demo_profile), ["train.lr=0.001,0.0005"])
    assert len(before.data) == len(after.data) == 1
    assert set(before.data) != set(after.data)
    for old, new in zip(before.variants, after.variants, strict=True):
        assert old.layout.root == new.layout.root
        assert old.layout.data_root != new.layout.data_root
    lines = sweeps.dry_run(after)
    assert "to run (convert, lmdb)" in lines[1]


def test_a_variant_with_another_context_length_measures_its_own_tokens(
    tmp_path, demo_root, built_demo
):
    from retclip_pipeline import ownership
    from retclip_pipeline.evaluation.report import caveats

    report = json.loads(RunLayout(built_demo).convert_report.read_text())
    assert report["tokens"]["context_length"] == 24
    path = write_profile(tmp_path, demo_toml(demo_root, workdir="w", model={"context_length": 12}))
    profile = profiles.load(path)
    profile.data_dir = str(built_demo)
    variant = sweeps.Variant({"model.context_length": 12}, "v", "v", profile, "k")
    layout = variant.layout
    with ownership.recording(layout.root):
        sweeps._own_tokens(variant)
    own = json.loads(layout.own_tokens.read_text())["tokens"]
    assert own["context_length"] == 12 and own["prompts"] == report["tokens"]["prompts"]
    assert own["truncated"] > report["tokens"]["truncated"]
    assert any("exceed the context length 12" in line for line in caveats(layout, profile))
    # The tower and length the shared report measured: no file of its own (ours, removed).
    profile.model.context_length = 24
    with ownership.recording(layout.root):
        sweeps._own_tokens(variant)
    assert not layout.own_tokens.exists()


def test_a_shared_data_folder_an_earlier_version_named_is_kept(tmp_path, demo_root):
    """Before fingerprints named a local data set by its files, its path was in the shared
    data folder's name: such a folder is still found and not converted again."""
    from retclip_pipeline.runner import fingerprints
    from retclip_pipeline.state import RunState

    shutil.copytree(demo_root, tmp_path / "set")
    base = profiles.load(write_profile(tmp_path, demo_toml(Path("set"), workdir="w")))
    sweep = sweeps.build(base, ["train.lr=0.001,0.0005"])
    sweeps.prepare_data(sweep, lambda event: None)
    [(key, shared)] = sweep.data.items()
    old = fingerprints(shared, earlier=True)
    assert old["lmdb"] != key
    state = RunState.load(shared.workdir_path())  # as the earlier version recorded it
    for name in ("convert", "lmdb"):
        state.mark(name, "done", old[name], summary=state.stages[name].get("summary", {}))
    layout = sweep.layout
    layout.sweep_data(key).rename(layout.sweep_data(old["lmdb"]))

    again = sweeps.build(base, ["train.lr=0.001,0.0005"])
    assert list(again.data) == [old["lmdb"]]
    assert all(v.layout.data_root == layout.sweep_data(old["lmdb"]) for v in again.variants)
    lines = sweeps.dry_run(again)
    assert lines[1].endswith(": done"), lines
    assert all("convert done (shared); lmdb done (shared)" in line for line in lines[3::2])
    said = []
    sweeps.prepare_data(again, said.append)
    assert [e.message for e in said] == [f"shared data data-{old['lmdb']}: done (2 variants)"]
