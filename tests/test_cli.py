"""The command line: exit codes, one-line user errors (table-driven), --dry-run, --check."""

import errno
import json
import shutil

import pytest

from retclip_pipeline.__main__ import main

from .conftest import write_profile


def _profile(tmp_path, demo_root, **overrides):
    """A profile over a private copy of the demo set; overrides replace `key = value` lines."""
    data = tmp_path / "set"
    if not data.exists():
        shutil.copytree(demo_root, data)
    values = {
        "workdir": f'"{tmp_path / "run"}"',
        "dataset": f'"{data}"',
        "train_csv": f'"{data}/prompts_train.csv"',
        "test_csv": f'"{data}/prompts_test.csv"',
    } | overrides
    return write_profile(
        tmp_path,
        f"""workdir = {values["workdir"]}
[hub]
dataset = {values["dataset"]}
[data]
train_csv = {values["train_csv"]}
test_csv = {values["test_csv"]}
image_size = 32
{values.get("data_extra", "")}
[model]
vision = {values.get("vision", '"tiny"')}
text = "tiny"
[train]
batch_size = 16
epochs = 1
workers = 0
""",
    )


def _edit_csv(path, old, new):
    path.write_text(path.read_text().replace(old, new, 1))


def _bad_index(tmp_path):
    _edit_csv(tmp_path / "set/prompts_train.csv", "\n0,", "\nzero,")


def _range_index(tmp_path):
    _edit_csv(tmp_path / "set/prompts_train.csv", "\n0,", "\n99999,")


def _empty_prompt(tmp_path):
    path = tmp_path / "set/prompts_test.csv"
    lines = path.read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:2]) + ","
    path.write_text("\n".join(lines) + "\n")


def _no_column(tmp_path):
    _edit_csv(tmp_path / "set/prompts_train.csv", "dataset_index,", "idx,")


def _corrupt_image(tmp_path):
    victim = sorted((tmp_path / "set/train/Glaucoma").glob("*.jpg"))[1]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated


def _malformed(tmp_path):
    (tmp_path / "profile.toml").write_text("name = 'x'\n[data\n")


def _unknown_key(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text(path.read_text() + "\n[sizing]\nsample = 3\n")


TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"  # token-shaped, not a real token


def _edit_line(tmp_path, number, edit):
    path = tmp_path / "set/prompts_train.csv"
    lines = path.read_text().splitlines()
    lines[number - 1] = edit(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")


def _extra_field(tmp_path):
    _edit_line(tmp_path, 3, lambda line: line + ", and more")  # an unquoted comma


def _missing_field(tmp_path):
    _edit_line(tmp_path, 3, lambda line: ",".join(line.split(",")[:2]))


def _unclosed_quote(tmp_path):
    _edit_csv(tmp_path / "set/prompts_train.csv", ",Examination", ',"Examination')


def _repeated_column(tmp_path):
    _edit_csv(tmp_path / "set/prompts_train.csv", "label,prompt", "prompt,prompt")


def _underscore_index(tmp_path):
    _edit_csv(tmp_path / "set/prompts_train.csv", "\n0,", "\n1_4,")


def _profile_lines(**sections):
    """Damage adding `key = value` lines at the top of [section] of the profile."""

    def damage(tmp_path):
        path = tmp_path / "profile.toml"
        text = path.read_text()
        for section, line in sections.items():
            if f"[{section}]" in text:
                text = text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
            else:
                text += f"\n[{section}]\n{line}\n"
        path.write_text(text)

    return damage


def _profile_is_a_folder(tmp_path):
    (tmp_path / "profile.toml").unlink()
    (tmp_path / "profile.toml").mkdir()


BAD_INPUT = [
    # (case, profile overrides, damage, words the one line must contain)
    ("missing CSV", {"train_csv": '"/nope/train.csv"'}, None, ["data.train_csv", "file not found"]),
    ("CSV without column", {}, _no_column, ["no column 'dataset_index'", "data.index_column"]),
    ("non-integer index", {}, _bad_index, ["prompts_train.csv", "line 2", "not an integer"]),
    ("out-of-range index", {}, _range_index, ["line 2", "99999 is outside the split"]),
    ("empty prompt", {}, _empty_prompt, ["prompts_test.csv", "line 3", "empty prompt"]),
    (
        "unknown data set path",
        {"dataset": '"./no/such/set"'},
        None,
        ["hub.dataset", "no such folder"],
    ),
    (
        "unknown split",
        {"data_extra": 'test_split = "valid"'},
        None,
        ["no split 'train', 'valid'", "data.test_split"],
    ),
    (
        "corrupt image",
        {},
        _corrupt_image,
        ["train split, index", "prompts_train.csv line", 'data.on_bad_row = "skip"'],
    ),
    ("malformed TOML", {}, _malformed, ["not valid TOML", "line 2"]),
    ("unknown key", {}, _unknown_key, ["sizing.sample", "did you mean 'samples'"]),
    (
        "unwritable work directory",
        {"workdir": '"/proc/version/run"'},
        None,
        ["cannot write to the work directory", "--workdir"],
    ),
    ("unknown stage", {}, None, ["unknown stage 'train-it'"]),
    ("no stage", {}, None, ["--stages names no stage", "convert, lmdb, train, evaluate"]),
    (
        "ragged row, too many fields",
        {},
        _extra_field,
        ["prompts_train.csv", "line 3", "4 fields, the header has 3", "quote the prompt"],
    ),
    (
        "ragged row, too few fields",
        {},
        _missing_field,
        ["prompts_train.csv", "line 3", "2 field(s), the header has 3", "fields missing"],
    ),
    (
        "unclosed quote",
        {},
        _unclosed_quote,
        ["line 2", "a quote opens on this line and is not closed", "lines 3-5"],
    ),
    (
        "repeated header column",
        {},
        _repeated_column,
        ["prompts_train.csv line 1", "column 'prompt' appears 2 times"],
    ),
    ("index with an underscore", {}, _underscore_index, ["line 2", "'1_4' is not an integer"]),
    ("lr nan", {}, _profile_lines(train="lr = nan"), ["train.lr", "finite number, got nan"]),
    ("lr inf", {}, _profile_lines(train="lr = inf"), ["train.lr", "finite number, got inf"]),
    (
        "no templates",
        {},
        _profile_lines(eval="templates = []"),
        ["eval.templates", "at least one template"],
    ),
    (
        "template with two {}",
        {},
        _profile_lines(eval='templates = ["fundus of {} and {}"]'),
        ["eval.templates", "template 1", "exactly one {}"],
    ),
    (
        "template without {}",
        {},
        _profile_lines(eval='templates = ["a {}", "fundus"]'),
        ["eval.templates", "template 2 ('fundus')", "exactly one {}"],
    ),
    ("profile path a folder", {}, _profile_is_a_folder, ["is a folder", "profile's TOML file"]),
    (
        "token in token_env",
        {},
        _profile_lines(hub=f'token_env = "{TOKEN}"'),
        ["profile.toml:3: hub.token_env", "looks like a Hugging Face token", "revoke"],
    ),
    (
        "token in another key",
        {},
        _profile_lines(eval=f'class_names = {{ CSC = "csc", AMD = "x {TOKEN}" }}'),
        ["eval.class_names.AMD", "looks like a Hugging Face token"],
    ),
    (
        "tower not available offline",
        {"vision": '"vit-b-16"'},
        None,
        ["cannot load the towers model.vision = 'vit-b-16'", "offline"],
    ),
]


@pytest.mark.parametrize("kind", ["os", "lmdb"])
def test_disk_full_is_a_user_error_and_keeps_finished_work(
    tmp_path, demo_root, capsys, monkeypatch, kind
):
    from retclip_pipeline.data import lmdb_io as lmdb_store

    profile = _profile(tmp_path, demo_root)

    def full(*args, **kwargs):
        if kind == "lmdb":
            import lmdb

            raise lmdb.Error("mdb_txn_commit: No space left on device")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lmdb_store, "build_env", full)
    assert main(["--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert "disk full" in err and "Traceback" not in err
    assert (tmp_path / "run/data/train_imgs.tsv").exists()  # convert's work is kept
    monkeypatch.undo()
    assert main(["--profile", str(profile)]) == 0
    assert "[convert] done and current" in capsys.readouterr().err


def test_a_stage_error_is_printed_once(tmp_path, demo_root, capsys):
    """The failed stage, the ended run and the command each used to print the same error:
    the user reads it once, on the command's one `error:` line (events.jsonl keeps all)."""
    profile = _profile(tmp_path, demo_root)
    _corrupt_image(tmp_path)
    assert main(["--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert "train split, index" in line
    assert err.count(line.removeprefix("error: ")) == 1, err
    assert "[convert] error" not in err and "[run] error" not in err, err
    kinds = [
        json.loads(e)["kind"] for e in (tmp_path / "run/events.jsonl").read_text().splitlines()
    ]
    assert kinds[-2:] == ["stage_failed", "run_finished"]


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, demo_root, capsys):
    profile = _profile(tmp_path, demo_root)
    assert main(["--profile", str(profile), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "convert  to run" in out and "lmdb     to run" in out
    assert "train: " in out and "images in this run" in out
    assert not (tmp_path / "run").exists()
    assert main(["--profile", str(profile)]) == 0
    capsys.readouterr()
    assert main(["--profile", str(profile), "--dry-run", "--stages", "lmdb"]) == 0
    out = capsys.readouterr().out
    assert "convert  done [not selected]" in out and "lmdb     done" in out


def test_check_passes_on_good_input_and_fails_on_bad(tmp_path, demo_root, capsys):
    profile = _profile(tmp_path, demo_root)
    assert main(["--profile", str(profile), "--check"]) == 0
    out = capsys.readouterr().out
    for item in (
        "profile",
        "train CSV",
        "test CSV",
        "data set train",
        "token",
        "work directory",
        "disk space",
    ):
        assert f"[ok  ] {item}" in out, out
    _no_column(tmp_path)
    assert main(["--profile", str(profile), "--check"]) == 2
    out = capsys.readouterr().out
    assert "[FAIL] train CSV" in out and "checks passed" in out


def test_check_fails_on_a_ragged_csv(tmp_path, demo_root, capsys):
    profile = _profile(tmp_path, demo_root)
    _extra_field(tmp_path)
    assert main(["--profile", str(profile), "--check"]) == 2
    out = capsys.readouterr().out
    assert "[FAIL] train CSV" in out and "line 3: 4 fields, the header has 3" in out
    path = tmp_path / "profile.toml"
    path.write_text(path.read_text().replace("[data]\n", '[data]\non_bad_row = "skip"\n'))
    assert main(["--profile", str(profile), "--check"]) == 0
    assert "1 bad row(s) left out (line 3: 4 fields, the header has 3" in capsys.readouterr().out


def test_a_token_in_the_profile_is_shown_and_written_nowhere(tmp_path, demo_root, capsys):
    profile = _profile(tmp_path, demo_root)
    _profile_lines(hub=f'token_env = "{TOKEN}"', eval=f'templates = ["{TOKEN} {{}}"]')(tmp_path)
    assert main(["--profile", str(profile)]) == 2
    captured = capsys.readouterr()
    assert TOKEN[3:] not in captured.err + captured.out
    assert "eval.templates[0]: looks like a Hugging Face token" in captured.err
    assert not (tmp_path / "run").exists()  # no profile.resolved.toml, events or state


def _resolved_run(tmp_path, demo_root, mode: str):
    from retclip_pipeline import profile as profiles

    profile = profiles.load(_profile(tmp_path, demo_root))
    profile.sizing.mode = mode
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "profile.resolved.toml").write_text(profiles.dumps(profile, resolved=True))
    return run_dir


def test_promote_refuses_what_is_not_a_passed_smoke_run(tmp_path, demo_root, capsys):
    assert main(["promote", "--run", str(tmp_path / "nowhere")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    full = _resolved_run(tmp_path, demo_root, "full")
    assert main(["promote", "--run", str(full)]) == 2
    assert "is a full run, not a smoke run" in capsys.readouterr().err
    smoke = _resolved_run(tmp_path, demo_root, "smoke")
    assert main(["promote", "--run", str(smoke)]) == 2
    err = capsys.readouterr().err
    assert "the smoke run's checklist failed (data readable" in err and "--force" in err
    assert main(["promote", "--run", str(smoke), "--force", "--workdir", str(tmp_path / "f")]) == 0
    assert "run it with: python -m retclip_pipeline --profile" in capsys.readouterr().err
    assert (tmp_path / "f" / "profile.toml").is_file()


def test_no_test_split_with_the_evaluation_fails_the_check_and_the_run_at_once(
    tmp_path, demo_root, capsys
):
    """Without data.test_csv the evaluate stage has nothing to read: --check says so, and a
    run stops before its first stage (not after training); the stages without it run."""
    profile = _profile(tmp_path, demo_root, test_csv='""')
    assert main(["--profile", str(profile), "--check"]) == 2
    out = capsys.readouterr().out
    assert "[FAIL] stages: the evaluate stage needs a test split" in out, out
    assert main(["--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert "data.test_csv is empty" in err and "--stages convert,lmdb,train" in err
    assert not (tmp_path / "run" / "data").exists()  # nothing was converted
    stages = ["--stages", "convert,lmdb"]
    assert main(["--profile", str(profile), "--check", *stages]) == 0
    assert main(["--profile", str(profile), *stages]) == 0
