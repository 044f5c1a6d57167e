"""Bad input of every kind a user can give (profile, CSV, data set, LMDB, checkpoint,
folders): each ends with exit 2 and one line naming the file, key or line and what to do,
no traceback, and the finished work is left as it was."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from retclip_pipeline.__main__ import main

from .test_cli import BAD_INPUT, TOKEN, _profile, _profile_lines

BOOKKEEPING = ("events.jsonl", "state.json", "manifest.txt", "run.lock", "profile.resolved.toml")


def _build(tmp_path, stages="convert,lmdb,train") -> Path:
    assert main(["--profile", str(tmp_path / "profile.toml"), "--stages", stages]) == 0
    return tmp_path / "run"


def _put(env: Path, key: bytes, value: bytes) -> None:
    handle = lmdb.open(str(env), subdir=True)
    with handle.begin(write=True) as txn:
        txn.put(key, value)
    handle.close()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


class Foreign:  # a class a pickle can name: loading it could run code
    pass


def _truncated_test_lmdb(tmp_path):
    _truncate(_build(tmp_path) / "lmdb/test/imgs/data.mdb")


def _garbage_lmdb(tmp_path):
    (_build(tmp_path) / "lmdb/test/pairs/data.mdb").write_bytes(b"not an lmdb" * 100)


def _class_in_a_record(tmp_path):
    run = _build(tmp_path, "convert,lmdb")
    _put(run / "lmdb/train/pairs", b"0", pickle.dumps(Foreign(), protocol=4))


def _pair_without_patient(tmp_path):
    run = _build(tmp_path, "convert,lmdb")
    _put(run / "lmdb/train/pairs", b"0", pickle.dumps((99999, 0, "x"), protocol=4))


def _count_beyond_records(tmp_path):
    run = _build(tmp_path, "convert,lmdb")
    _put(run / "lmdb/train/pairs", b"num_samples", b"100000")


def _to_resume(run: Path) -> None:
    """The training as if cut off: its checkpoint is what a rerun reads."""
    state = json.loads((run / "state.json").read_text())
    state["stages"]["train"]["status"] = "interrupted"
    (run / "state.json").write_text(json.dumps(state))
    (run / ".receipts/train.json").unlink()


def _garbage_checkpoint(tmp_path):
    run = _build(tmp_path)
    _to_resume(run)
    (run / "logs/retclip/checkpoints/epoch_latest.pt").write_bytes(b"garbage" * 1000)


def _truncated_checkpoint(tmp_path):
    run = _build(tmp_path)
    _to_resume(run)
    _truncate(run / "logs/retclip/checkpoints/epoch_latest.pt")


def _foreign_checkpoint(tmp_path):
    import torch

    _build(tmp_path)
    torch.save({"state_dict": Foreign()}, tmp_path / "theirs.pt")


def _init_garbage(tmp_path):
    (tmp_path / "init.pt").write_bytes(b"garbage")
    _profile_lines(model=f'init = "{tmp_path / "init.pt"}"')(tmp_path)


def _workdir_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("mine")


def _not_utf8_profile(tmp_path):
    (tmp_path / "profile.toml").write_bytes(b'name = "x"\n# \xff\xfe\n')


def _name_with_a_slash(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text('name = "a/b"\n' + path.read_text())


def _not_utf8_csv(tmp_path):
    path = tmp_path / "set/prompts_train.csv"
    path.write_bytes(path.read_bytes().replace(b"fundus", b"fund\xe9s", 1))


def _empty_csv(tmp_path):
    (tmp_path / "set/prompts_train.csv").write_text("")


def _header_only_csv(tmp_path):
    (tmp_path / "set/prompts_test.csv").write_text("dataset_index,label,prompt\n")


def _unreadable_test_images(tmp_path):
    for image in (tmp_path / "set" / "test").rglob("*.jpg"):
        image.write_bytes(b"garbage")
    _profile_lines(data='on_bad_row = "skip"')(tmp_path)


def _evaluated(tmp_path) -> Path:
    """A finished run, the evaluation included: the finished work a bad input must keep."""
    return _build(tmp_path, "convert,lmdb,train,evaluate")


def _zero_byte_checkpoint(tmp_path):
    _evaluated(tmp_path)
    (tmp_path / "zero.pt").write_bytes(b"")


def _checkpoint_a_folder(tmp_path):
    _evaluated(tmp_path)
    (tmp_path / "folder.pt").mkdir()


def _foreign_checkpoint_after_evaluation(tmp_path):
    _evaluated(tmp_path)
    _foreign_checkpoint(tmp_path)


def _unknown_eval_checkpoint(tmp_path):
    _evaluated(tmp_path)
    _profile_lines(eval='checkpoint = "nope.pt"')(tmp_path)


def _lmdb_path_a_file(tmp_path):
    run = _build(tmp_path, "convert,lmdb")
    shutil.rmtree(run / "lmdb/test/imgs")
    (run / "lmdb/test/imgs").write_text("mine")


def _profile_a_pipe(tmp_path):
    (tmp_path / "profile.toml").unlink()
    os.mkfifo(tmp_path / "profile.toml")


def _profile_a_link_loop(tmp_path):
    (tmp_path / "profile.toml").unlink()
    (tmp_path / "profile.toml").symlink_to(tmp_path / "profile.toml")


def _profile_over_a_megabyte(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text(path.read_text() + "#" * (2 << 20) + "\n")


def _csv_a_folder(tmp_path):
    (tmp_path / "set/prompts_test.csv").unlink()
    (tmp_path / "set/prompts_test.csv").mkdir()


def _folder_named_like_an_image(tmp_path):
    """`train/Glaucoma/00009.jpg/` a folder with an image in it: read as one more row, it
    moved every later index onto the wrong image, silently."""
    folder = tmp_path / "set/train/Glaucoma"
    (folder / "00009.jpg").mkdir()
    shutil.copy(folder / "00001.jpg", folder / "00009.jpg/inner.jpg")


def _image_a_level_deeper(tmp_path):
    folder = tmp_path / "set/train/Glaucoma"
    (folder / "more").mkdir()
    shutil.copy(folder / "00001.jpg", folder / "more/00001.jpg")


def _stray_image_beside_the_class_folders(tmp_path):
    shutil.copy(tmp_path / "set/train/Glaucoma/00001.jpg", tmp_path / "set/train/x.png")


def _name_dot_dot(tmp_path):
    """name = "..": logs/.. was the run folder, and training set the run's data aside."""
    path = tmp_path / "profile.toml"
    path.write_text('name = ".."\n' + path.read_text())


def _evaluated_then_name_dot(tmp_path):
    _evaluated(tmp_path)
    path = tmp_path / "profile.toml"
    path.write_text('name = "."\n' + path.read_text())


def _set_line(tmp_path, key: str, value: str) -> None:
    path = tmp_path / "profile.toml"
    lines = path.read_text().splitlines()
    lines = [f'{key} = "{value}"' if line.startswith(f"{key} = ") else line for line in lines]
    path.write_text("\n".join(lines) + "\n")


def _empty_parquet_set(tmp_path):
    """Parquet splits without a row: a DatasetGenerationError traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array([], image), "label": pa.array([], pa.string())})
    (tmp_path / "pq/data").mkdir(parents=True)
    for split in ("train", "test"):
        pq.write_table(table, tmp_path / f"pq/data/{split}-00000-of-00001.parquet")
    _set_line(tmp_path, "dataset", str(tmp_path / "pq"))


def _workdir_inside_the_data_set(tmp_path):
    """Its figures (PNG) would be read as images of the split on the next run."""
    _set_line(tmp_path, "workdir", str(tmp_path / "set/train/run"))


def _converted_line_not_a_record(tmp_path):
    """A converted file edited by hand: JSON but no record was a TypeError traceback."""
    run = _build(tmp_path, "convert")
    with (run / "data/train_texts.jsonl").open("a") as texts:
        texts.write("[]\n")


def _converted_tsv_not_utf8(tmp_path):
    run = _build(tmp_path, "convert")
    with (run / "data/train_imgs.tsv").open("ab") as images:
        images.write(b"7\t\xff\xfe\tx\n")


def _converted_images_line_cut(tmp_path):
    run = _evaluated(tmp_path)
    with (run / "data/test_images.jsonl").open("a") as images:
        images.write('{"image_id": 99\n')


def _class_name_of_no_class(tmp_path):
    """A mistyped label in eval.class_names changed no prompt, silently."""
    _evaluated(tmp_path)
    _profile_lines(eval='class_names = { Glaucom = "glaucoma" }')(tmp_path)


def _init_a_folder(tmp_path):
    """The refusal said "or delete this one" of the user's folder."""
    (tmp_path / "weights").mkdir()
    _profile_lines(model=f'init = "{tmp_path / "weights"}"')(tmp_path)


def _workers_by_the_thousand(tmp_path):
    """100000 DataLoader workers: as many processes forked, no limit said."""
    path = tmp_path / "profile.toml"
    path.write_text(path.read_text().replace("workers = 0", "workers = 100000"))


def _data_set_inside_the_runs_data(tmp_path):
    """A data set in <run>/data/: the conversion wrote its tables among its files."""
    shutil.copytree(tmp_path / "set", tmp_path / "run/data/set")
    _set_line(tmp_path, "dataset", str(tmp_path / "run/data/set"))


def _two_labels_for_one_image(tmp_path):
    """Index 0's second prompt labelled another class: its texts stood for two classes."""
    path = tmp_path / "set/prompts_train.csv"
    lines = path.read_text().split("\n")
    index, _, prompt = lines[2].split(",", 2)
    lines[2] = ",".join([index, "Healthy", prompt])
    path.write_text("\n".join(lines))


HOLDER = """
import sys, time
from pathlib import Path
from retclip_pipeline.watch import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


MORE = [
    ("truncated LMDB", {}, _truncated_test_lmdb, ["lmdb/test/imgs/data.mdb is truncated"]),
    ("not an LMDB", {}, _garbage_lmdb, ["lmdb/test/pairs is not a readable LMDB"]),
    (
        "LMDB record naming a class",
        {},
        _class_in_a_record,
        ["lmdb/train/pairs", "key '0' is not one this pipeline wrote", "lmdb stage will run"],
    ),
    ("LMDB pair without its patient", {}, _pair_without_patient, ["patient 99999"]),
    ("LMDB count beyond its records", {}, _count_beyond_records, ["has no record under key"]),
    ("damaged checkpoint", {}, _garbage_checkpoint, ["epoch_latest.pt", "damaged or not a"]),
    ("truncated checkpoint", {}, _truncated_checkpoint, ["epoch_latest.pt", "damaged or not"]),
    ("checkpoint naming a class", {}, _foreign_checkpoint, ["theirs.pt", "could run code"]),
    ("checkpoint not found", {}, _build, ["no checkpoint at", "nope.pt"]),
    ("init not a checkpoint", {}, _init_garbage, ["init.pt", "damaged or not a checkpoint"]),
    ("work folder is a file", {}, _workdir_is_a_file, ["cannot write to the work directory"]),
    ("run going in another process", {}, None, ["already being run by process"]),
    ("profile not UTF-8", {}, _not_utf8_profile, ["profile.toml", "not UTF-8"]),
    (
        "wrong type",
        {},
        _profile_lines(train='warmup_steps = "x"'),
        ["train.warmup_steps", "integer"],
    ),
    (
        "out of range",
        {},
        _profile_lines(train="save_every = 0"),
        ["train.save_every", "at least 1"],
    ),
    ("unknown section", {}, _profile_lines(trian="epochs = 1"), ["trian", "did you mean 'train'"]),
    (
        "unknown choice",
        {},
        _profile_lines(train='precision = "fp8"'),
        ["train.precision", "expected one of"],
    ),
    (
        "paired without eye columns",
        {},
        _profile_lines(data='eyes = "paired"'),
        ["data.left_text_column", 'required when data.eyes = "paired"'],
    ),
    ("name with a slash", {}, _name_with_a_slash, ["name", "letters, digits"]),
    (
        "token_env not a variable name",
        {},
        _profile_lines(hub='token_env = "my token"'),
        ["hub.token_env"],
    ),
    (
        "image column missing",
        {},
        _profile_lines(data='image_column = "img"'),
        ["no column 'img'", "data.image_column"],
    ),
    (
        "label column missing",
        {},
        _profile_lines(data='label_column = "diagnosis"'),
        ["no column 'diagnosis'", "data.label_column"],
    ),
    ("CSV not UTF-8", {}, _not_utf8_csv, ["prompts_train.csv", "UTF-8"]),
    ("CSV empty", {}, _empty_csv, ["prompts_train.csv", "is empty"]),
    ("CSV header only", {}, _header_only_csv, ["prompts_test.csv", "no rows"]),
    (
        "every test image unreadable",
        {},
        _unreadable_test_images,
        ["no image of the test split could be read", "data.image_column"],
    ),
    (
        "class names not strings",
        {},
        _profile_lines(eval="class_names = { Healthy = 1 }"),
        ["eval.class_names", "a table of strings"],
    ),
    (
        "zero-byte checkpoint",
        {},
        _zero_byte_checkpoint,
        ["zero.pt", "damaged or not a checkpoint", "give a checkpoint"],
    ),
    ("checkpoint a folder", {}, _checkpoint_a_folder, ["no checkpoint at", "folder.pt"]),
    (
        "checkpoint naming a class, evaluation kept",
        {},
        _foreign_checkpoint_after_evaluation,
        ["theirs.pt", "could run code"],
    ),
    (
        "unknown eval.checkpoint",
        {},
        _unknown_eval_checkpoint,
        ["no checkpoint at", "nope.pt", "eval.checkpoint"],
    ),
    ("LMDB path a file", {}, _lmdb_path_a_file, ["evaluate needs lmdb", "--stages lmdb"]),
    ("profile a device", {}, None, ["/dev/zero is not a regular file", "profile's TOML file"]),
    ("profile a pipe", {}, _profile_a_pipe, ["profile.toml is not a regular file"]),
    ("profile a link loop", {}, _profile_a_link_loop, ["profile.toml", "give its TOML file"]),
    ("profile over a megabyte", {}, _profile_over_a_megabyte, ["profile.toml", "over 1 MB"]),
    (
        "TOML key given twice",
        {},
        _profile_lines(train="epochs = 2"),
        ["profile.toml", "not valid TOML", "line", "given twice; keep one"],
    ),
    (
        "TOML table given twice",
        {},
        _profile_lines(model='vision = "tiny"\n[train]\nepochs = 2'),
        ["not valid TOML", "Cannot declare ('train',) twice", "keep one"],
    ),
    ("lr over 1", {}, _profile_lines(train="lr = 1e308"), ["train.lr", "at most 1.0"]),
    (
        "seed over 2**32 - 1",
        {},
        _profile_lines(train="seed = 9223372036854775807"),
        ["train.seed", "at most 4294967295"],
    ),
    ("CSV a folder", {}, _csv_a_folder, ["data.test_csv", "prompts_test.csv"]),
    ("work folder a device", {}, None, ["cannot write to the work directory /dev/null"]),
    (
        "folder named like an image",
        {},
        _folder_named_like_an_image,
        ["train/Glaucoma/00009.jpg is a folder named like an image", "rename it or move it"],
    ),
    (
        "image a level deeper than the others",
        {},
        _image_a_level_deeper,
        ["Glaucoma/more/00001.jpg lies 1 folder level(s) deeper", "train split", "same depth"],
    ),
    (
        "image beside the class folders",
        {},
        _stray_image_beside_the_class_folders,
        ["train/x.png lies 1 folder level(s) less deep", "same depth"],
    ),
    (
        "weight decay far too large",
        {},
        _profile_lines(train="weight_decay = 1e308"),
        ["train.weight_decay", "at most 1.0"],
    ),
    ("name '..'", {}, _name_dot_dot, ["name", "'..'", "not starting with '.'"]),
    ("name '.' after a finished run", {}, _evaluated_then_name_dot, ["name", "'.'"]),
    ("empty --workdir", {}, None, ["--workdir is given an empty path"]),
    ("empty --checkpoint after a finished run", {}, _evaluated, ["--checkpoint is given an empty"]),
    (
        "accumulation beyond an epoch's batches",
        {},
        _profile_lines(train="accumulation = 1000000000000"),
        ["4 batch(es) of train.batch_size = 16", "train.accumulation = 1000000000000", "at most 4"],
    ),
    ("empty parquet splits", {}, _empty_parquet_set, ["cannot read data set", "ArrowInvalid"]),
    (
        "work folder inside the data set",
        {},
        _workdir_inside_the_data_set,
        ["set/train/run is inside the data set folder", "choose a workdir outside it"],
    ),
    (
        "converted texts line no record",
        {},
        _converted_line_not_a_record,
        ["data/train_texts.jsonl line 66", "list where a record is due", "convert stage will run"],
    ),
    (
        "converted images not UTF-8",
        {},
        _converted_tsv_not_utf8,
        ["data/train_imgs.tsv line 60", "not UTF-8 text", "convert stage will run again"],
    ),
    (
        "converted images line cut short",
        {},
        _converted_images_line_cut,
        ["data/test_images.jsonl line 31", "not JSON", "--restart --stages convert"],
    ),
    (
        "class name of no class",
        {},
        _class_name_of_no_class,
        ["eval.class_names names 'Glaucom'", "no class of this run's labels", "Glaucoma,"],
    ),
    ("init a folder", {}, _init_a_folder, ["model.init", "weights is a folder", "checkpoint file"]),
    (
        "init not found",
        {},
        _profile_lines(model='init = "nope.pt"'),
        ["profile.toml:", "model.init", "nope.pt is not found", "or leave it empty"],
    ),
    ("workers by the thousand", {}, _workers_by_the_thousand, ["train.workers", "at most 64"]),
    (
        "label column is the prompt column",
        {},
        _profile_lines(data='label_column = "prompt"'),
        ["data.label_column", "names column 'prompt' as data.text_column does"],
    ),
    (
        "prompt column is the index column",
        {},
        _profile_lines(data='text_column = "dataset_index"'),
        ["data.text_column", "names column 'dataset_index' as data.index_column does"],
    ),
    (
        "data set inside the run's data folder",
        {},
        _data_set_inside_the_runs_data,
        ["run/data/set (hub.dataset) is inside", "run/data, where the run writes"],
    ),
    (
        "two labels for one image",
        {},
        _two_labels_for_one_image,
        ["prompts_train.csv", "line 3: label 'Healthy', but line 2 gives the same image 'Cent"],
    ),
    (
        "a token as a template",
        {},
        _profile_lines(eval=f'templates = ["{TOKEN} {{}}"]'),
        ["eval.templates", "looks like a Hugging Face token"],
    ),
]
EXTRA_ARGS = {
    "unknown stage": ["--stages", "train-it"],
    "no stage": ["--stages", " , "],
    "checkpoint naming a class": ["--stages", "evaluate", "--checkpoint", "{tmp}/theirs.pt"],
    "checkpoint not found": ["--stages", "evaluate", "--checkpoint", "{tmp}/nope.pt"],
    "work folder is a file": ["--workdir", "{tmp}/afile"],
    "zero-byte checkpoint": ["--stages", "evaluate", "--checkpoint", "{tmp}/zero.pt"],
    "checkpoint a folder": ["--stages", "evaluate", "--checkpoint", "{tmp}/folder.pt"],
    "checkpoint naming a class, evaluation kept": [
        "--stages",
        "evaluate",
        "--checkpoint",
        "{tmp}/theirs.pt",
    ],
    "unknown eval.checkpoint": ["--stages", "evaluate"],
    "LMDB path a file": ["--stages", "evaluate"],
    "profile a device": ["--profile", "/dev/zero"],
    "work folder a device": ["--workdir", "/dev/null"],
    "empty --workdir": ["--workdir", ""],
    "converted images line cut short": [
        "--stages",
        "evaluate",
        "--checkpoint",
        "{tmp}/run/logs/retclip/checkpoints/epoch1.pt",
    ],
    "empty --checkpoint after a finished run": ["--stages", "evaluate", "--checkpoint="],
}
CASES = BAD_INPUT + MORE


def _snapshot(run: Path) -> dict[str, str]:
    """Every finished output's digest (the run's bookkeeping files aside)."""
    if not run.is_dir():
        return {}
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name not in BOOKKEEPING and ".receipts" not in p.parts
    }


def test_the_table_is_long_enough():
    assert len(CASES) >= 40 and len({case for case, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize("case,overrides,damage,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_keeps_finished_work(
    tmp_path, demo_root, capsys, case, overrides, damage, words
):
    profile = _profile(tmp_path, demo_root, **overrides)
    holder = None
    if damage:
        damage(tmp_path)
    if case == "run going in another process":
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE
        )
        assert holder.stdout.readline().strip() == b"held"
    before = _snapshot(tmp_path / "run")
    capsys.readouterr()
    args = ["--profile", str(profile)]
    args += [a.format(tmp=tmp_path) for a in EXTRA_ARGS.get(case, [])]
    try:
        assert main(args) == 2
    finally:
        if holder:
            holder.kill()
            holder.wait()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "weights_only=False" not in err
    assert TOKEN[3:] not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    after = _snapshot(tmp_path / "run")
    assert {k: v for k, v in after.items() if k in before} == before, "finished work changed"


def test_a_non_finite_loss_names_the_weight_decay_when_it_is_large():
    from types import SimpleNamespace

    from retclip_pipeline.training.stop import nan_advice

    assert "train.weight_decay (now 0.9) or train.lr" in nan_advice(
        SimpleNamespace(weight_decay=0.9, lr=3e-5)
    )
    usual = nan_advice(SimpleNamespace(weight_decay=0.001, lr=3e-5))
    assert usual.startswith("Lower train.lr,") and "weight_decay" not in usual


CLI_CASES = [
    (
        "embed: texts not UTF-8",
        ["embed", "--run", "{run}", "--texts", "{tmp}/bad.txt", "--out", "{tmp}/o.pt"],
        ["bad.txt is not UTF-8 text"],
    ),
    (
        "embed: texts file without a text",
        ["embed", "--run", "{run}", "--texts", "{tmp}/empty.txt", "--out", "{tmp}/o.pt"],
        ["empty.txt holds no text", "one text a line"],
    ),
    (
        "embed: --out a folder",
        ["embed", "--run", "{run}", "--texts", "{tmp}/ok.txt", "--out", "{tmp}"],
        ["cannot write", "Is a directory", "choose another --out"],
    ),
    (
        "embed: --out empty",
        ["embed", "--run", "{run}", "--texts", "{tmp}/ok.txt", "--out="],
        ["--out is given an empty path"],
    ),
    ("query: --k 0", ["query", "--run", "{run}", "a fundus", "--k", "0"], ["--k 0", "at least 1"]),
    ("query: --k -1", ["query", "--run", "{run}", "a fundus", "--k", "-1"], ["--k -1"]),
    (
        "compare: --out under a file",
        ["compare", "{run}", "--out", "{tmp}/ok.txt/table"],
        ["cannot write", "ok.txt", "choose another --out"],
    ),
]


@pytest.mark.parametrize("case,args,words", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_input_is_one_line_exit_2(finished_demo, tmp_path, capsys, case, args, words):
    """The commands around a finished run (embed, query, compare): a bad file or option is
    one line, exit 2, and the run is left as it was (these were tracebacks)."""
    (tmp_path / "bad.txt").write_bytes(b"a fundus \xff\n")
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "ok.txt").write_text("a fundus\n")
    before = _snapshot(finished_demo)
    capsys.readouterr()
    assert main([a.format(run=finished_demo, tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    assert _snapshot(finished_demo) == before
    assert not (tmp_path / "o.pt").exists()
