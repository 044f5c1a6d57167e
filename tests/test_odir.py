"""ODIR-5K's own layout: a folder of `<ID>_left.jpg` / `<ID>_right.jpg` and the annotation
sheet (with prompt columns added) that names them, joined by file name and by key; then
LMDB, a couple of training steps, per-eye evaluation and the API's pair encoding."""

import json
import shutil

import pytest

from retclip_pipeline import profile as profiles
from retclip_pipeline.errors import UserError
from retclip_pipeline.layout import RunLayout
from retclip_pipeline.runner import run

from .conftest import FIXTURES, write_profile

ODIR = FIXTURES / "odir"

ODIR_DATA = {
    "join": "file",
    "eyes": "paired",
    "key_column": "ID",
    "left_file_column": "Left-Fundus",
    "right_file_column": "Right-Fundus",
    "label_column": "",
    "text_column": "prompt_patient",
    "left_text_column": "prompt_left",
    "right_text_column": "prompt_right",
    "left_label_column": "Left-Diagnostic Keywords",
    "right_label_column": "Right-Diagnostic Keywords",
    "image_size": 32,
}


def odir_toml(root, data=None, train=None, workdir="run") -> str:
    import tomli_w

    return tomli_w.dumps(
        {
            "name": "odir",
            "workdir": workdir,
            "hub": {"dataset": str(root)},
            "data": {
                "train_csv": str(root / "odir_train.csv"),
                "test_csv": str(root / "odir_test.csv"),
            }
            | ODIR_DATA
            | (data or {}),
            "model": {"vision": "tiny", "text": "tiny", "context_length": 32},
            "train": {"batch_size": 4, "epochs": 1, "workers": 0, "save_every": 1} | (train or {}),
            "eval": {"batch_size": 8, "linear_probe": False, "examples": 1},
        }
    )


def _run(tmp_path, text, stages, name="p.toml", workdir="run"):
    events = []
    profile = profiles.load(write_profile(tmp_path, text, name))
    run(profile, tmp_path / workdir, events.append, selected=stages)
    return events


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def odir_run(tmp_path_factory):
    """The fixture through every stage once: convert, LMDB, two steps, evaluation."""
    folder = tmp_path_factory.mktemp("odir")
    _run(folder, odir_toml(ODIR), ["convert", "lmdb", "train", "evaluate"])
    return folder / "run"


def test_images_are_found_by_the_file_names_the_sheet_gives(odir_run):
    images = _jsonl(odir_run / "data/train_images.jsonl")
    texts = _jsonl(odir_run / "data/train_texts.jsonl")
    assert [r["key"] for r in images] == [str(i) for i in range(8)]
    assert images[2]["label_left"] == "glaucoma"
    assert texts[0]["text_left"].startswith("The left fundus")
    assert texts[0]["label_right"] == images[0]["label_right"]
    assert [r["key"] for r in _jsonl(odir_run / "data/test_images.jsonl")] == [
        "8",
        "9",
        "10",
        "11",
    ]
    # Each eye's own photograph: the left and right columns of the TSV differ.
    for line in (odir_run / "data/train_imgs.tsv").read_text().splitlines():
        _, left, right = line.split("\t")
        assert left != right


def test_a_couple_of_steps_then_per_eye_figures(odir_run):
    history = _jsonl(odir_run / "logs/odir/metrics.jsonl")
    assert history[-1]["step"] == 2  # 8 patients, batches of 4
    results = json.loads((odir_run / "evaluation/evaluation_results.json").read_text())
    assert set(results["per_eye"]) == {"left", "right"}
    for side in ("left", "right"):
        eye = results["per_eye"][side]
        assert set(eye["retrieval"]) >= {"instance", "class"}
        assert 0 <= eye["retrieval"]["instance"]["image_to_text"]["R@1"] <= 1
        shot = eye["zero_shot"]["templates"]
        assert shot["classes"] == [
            "glaucoma",
            "moderate non proliferative retinopathy",
            "normal fundus",
            "pathological myopia",
        ]
        assert sum(v["support"] for v in shot["per_class"].values()) == 4
        assert "train_prompts" in eye["zero_shot"]
    report = (odir_run / "evaluation/report.md").read_text()
    assert "## Per-eye retrieval" in report and "## Per-eye zero-shot" in report
    assert "| right | class |" in report


def test_encode_pair_gives_the_patient_and_each_eyes_embedding(odir_run):
    import torch

    from retclip_pipeline import api

    loaded = api.load(odir_run)
    left, right = ODIR / "Training Images/8_left.jpg", ODIR / "Training Images/8_right.jpg"
    pair = loaded.encode_pair(left, right)
    assert pair.patient.shape == pair.left.shape == pair.right.shape == (1, 64)
    assert torch.allclose(pair.patient.norm(dim=-1), torch.ones(1))
    # As the evaluation encoded the same patient (test image 8 is the first), up to the
    # conversion's JPEG round trip; and unlike any other test patient.
    saved = torch.load(RunLayout(odir_run).features("test_imgs"), weights_only=False)
    for name in ("patient", "left", "right"):
        cosines = getattr(pair, name) @ torch.nn.functional.normalize(saved[name], dim=-1).t()
        assert cosines[0, 0] > 0.99, (name, cosines)
        assert cosines[0, 0] == cosines.max(), (name, cosines)
    swapped = loaded.encode_pair([right, left], [left, right])
    assert swapped.patient.shape == (2, 64)
    assert torch.allclose(swapped.left[1], pair.left[0], atol=1e-5)
    assert not torch.allclose(swapped.patient[0], pair.patient[0], atol=1e-3)
    texts = loaded.encode_texts(["glaucoma"], head="left")
    assert texts.shape == (1, 64)
    with pytest.raises(UserError, match="2 left and 1 right"):
        loaded.encode_pair([left, left], [right])


def test_query_on_a_paired_run_without_patient_labels(odir_run, capsys):
    """Patients are named by the sheet's ID with each eye's condition (no "None"), and an
    image query ends with one line saying there are no classes, not an error."""
    from retclip_pipeline.__main__ import main

    assert main(["query", "--run", str(odir_run), "optic disc cupping", "--k", "4"]) == 0
    out = capsys.readouterr().out
    assert "top patients of the test split" in out and "None" not in out, out
    shown = sorted(line.split()[2] for line in out.splitlines()[1:])
    assert shown == ["10", "11", "8", "9"], out
    assert "patient 10 (left: glaucoma; right: pathological myopia)" in out, out
    image = ODIR / "Training Images/8_left.jpg"
    assert main(["query", "--run", str(odir_run), "--image", str(image), "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "[left: " in out and "[]" not in out, out
    assert out.splitlines()[-1].startswith("classes: none to choose from: the run has no class")


def _copy(tmp_path):
    root = tmp_path / "odir"
    shutil.copytree(ODIR, root)
    return root


def test_a_missing_image_is_counted_and_named_in_one_line(tmp_path):
    root = _copy(tmp_path)
    (root / "Training Images/3_right.jpg").unlink()
    with pytest.raises(UserError) as caught:
        _run(tmp_path, odir_toml(root), ["convert"])
    message = str(caught.value)
    assert "\n" not in message
    assert "1 of 8 patients have no image" in message
    assert "ID '3' (line 5): no file '3_right.jpg'" in message
    assert 'data.on_bad_row = "skip"' in message


def test_skip_leaves_the_patient_out_and_says_so(tmp_path):
    root = _copy(tmp_path)
    (root / "Training Images/3_right.jpg").unlink()
    events = _run(tmp_path, odir_toml(root, {"on_bad_row": "skip"}), ["convert"])
    warnings = [e.message for e in events if e.kind == "log" and e.level == "warning"]
    assert any("skipped 1 of 8 patients with no image" in w for w in warnings), warnings
    keys = [r["key"] for r in _jsonl(tmp_path / "run/data/train_images.jsonl")]
    assert keys == ["0", "1", "2", "4", "5", "6", "7"]


def test_a_file_name_found_twice_is_an_error_naming_both_paths(tmp_path):
    """One copy at the top of the folder and one nested: neither is picked silently; a
    path relative to the folder then says which."""
    root = _copy(tmp_path)
    shutil.copy(root / "Training Images/4_right.jpg", root / "3_right.jpg")
    with pytest.raises(UserError) as caught:
        _run(tmp_path, odir_toml(root), ["convert"])
    message = str(caught.value)
    assert "ID '3' (line 5): 2 files are named '3_right.jpg'" in message, message
    assert "(3_right.jpg and Training Images/3_right.jpg)" in message, message
    csv = root / "odir_train.csv"
    csv.write_text(
        csv.read_text(encoding="utf-8").replace(",3_right.jpg,", ",Training Images/3_right.jpg,"),
        encoding="utf-8",
    )
    _run(tmp_path, odir_toml(root), ["convert"])
    images = _jsonl(tmp_path / "run/data/train_images.jsonl")
    assert len(images) == 8


def test_names_without_extension_and_relative_paths_resolve(tmp_path):
    root = _copy(tmp_path)
    csv = root / "odir_train.csv"
    text = csv.read_text(encoding="utf-8")
    text = text.replace("0_left.jpg", "0_left").replace(
        "1_right.jpg", "Training Images/1_right.jpg"
    )
    csv.write_text(text, encoding="utf-8")
    _run(tmp_path, odir_toml(root), ["convert"])
    assert len(_jsonl(tmp_path / "run/data/train_images.jsonl")) == 8


def test_join_by_key_matches_a_data_set_column(tmp_path):
    """ODIR's sheet over a parquet data set with an `ID` column in another order."""
    import datasets

    root = _copy(tmp_path)
    features = datasets.Features(
        {"ID": datasets.Value("string"), "left": datasets.Image(), "right": datasets.Image()}
    )
    (root / "set/data").mkdir(parents=True)
    for split, ids in (("train", range(7, -1, -1)), ("test", range(11, 7, -1))):
        folder = root / "Training Images"
        rows = {
            "ID": [str(i) for i in ids],
            "left": [str(folder / f"{i}_left.jpg") for i in ids],
            "right": [str(folder / f"{i}_right.jpg") for i in ids],
        }
        dataset = datasets.Dataset.from_dict(rows, features=features)
        dataset.to_parquet(str(root / f"set/data/{split}-00000-of-00001.parquet"))
    keyed = {
        "join": "key",
        "dataset_key_column": "ID",
        "left_image_column": "left",
        "right_image_column": "right",
    }
    text = odir_toml(root, keyed).replace(f'dataset = "{root}"', f'dataset = "{root}/set"')
    _run(tmp_path, text, ["convert"])
    by_file = tmp_path / "byfile"
    by_file.mkdir()
    _run(by_file, odir_toml(root), ["convert"])
    # The same patients, in the sheet's order, with the same pixels either way.
    for name in ("train_imgs.tsv", "test_imgs.tsv"):
        assert (tmp_path / "run/data" / name).read_text() == (
            by_file / "run/data" / name
        ).read_text()
    (root / "set/data/test-00000-of-00001.parquet").unlink()
    dataset = datasets.Dataset.from_dict(
        {"ID": ["8", "9", "10"], "left": [None] * 3, "right": [None] * 3}, features=features
    )
    dataset.to_parquet(str(root / "set/data/test-00000-of-00001.parquet"))
    with pytest.raises(UserError, match=r"1 of 4 patients have no image: ID '11' \(line 5\)"):
        _run(tmp_path, text, ["convert"], name="q.toml", workdir="again")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"left_file_column": ""}, 'data.left_file_column: required when data.join = "file"'),
        ({"join": "key"}, 'data.dataset_key_column: required when data.join = "key"'),
    ],
)
def test_join_needs_its_columns(tmp_path, data, expected):
    with pytest.raises(UserError, match=expected):
        profiles.load(write_profile(tmp_path, odir_toml(ODIR, data)))
