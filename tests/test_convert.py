"""The conversion stage on small generated data, read back as the RET-CLIP reference reads it."""

import base64
import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from retclip_pipeline import profile as profiles
from retclip_pipeline.runner import run

from .conftest import PAIRED_DATA, demo_toml, write_profile

DATA_STAGES = ["convert", "lmdb"]


def _read_tsv(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.open(encoding="utf-8")]


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def test_outputs_follow_the_reference_layout(built_demo, demo_root):
    data = built_demo / "data"
    rows = _read_csv(demo_root / "prompts_train.csv")
    lines = _read_tsv(data / "train_imgs.tsv")
    texts = _read_jsonl(data / "train_texts.jsonl")
    assert all(len(line) == 3 for line in lines)
    ids = [int(line[0]) for line in lines]
    assert ids == sorted({int(r["dataset_index"]) for r in rows})  # every image in the CSV
    for _, left, right in lines[:5]:
        assert left == right  # single-eye data: the same image twice
        image = Image.open(io.BytesIO(base64.urlsafe_b64decode(left)))
        assert image.format == "JPEG" and image.size == (32, 32) and image.mode == "RGB"
    # Every CSV row is a pair, in CSV order, with its own text id.
    assert [t["text"] for t in texts] == [r["prompt"] for r in rows]
    assert [t["text_id"] for t in texts] == list(range(len(rows)))
    assert [t["image_ids"] for t in texts] == [[int(r["dataset_index"])] for r in rows]
    images = _read_jsonl(data / "train_images.jsonl")
    assert [i["image_id"] for i in images] == ids
    assert all(len(i["phash"][0]) == 64 for i in images)


def test_report_counts(built_demo, demo_root):
    report = json.loads((built_demo / "data" / "convert_report.json").read_text())
    rows = _read_csv(demo_root / "prompts_train.csv")
    train = report["splits"]["train"]
    assert train["rows_read"] == train["pairs_written"] == len(rows)
    assert train["images_written"] == len({r["dataset_index"] for r in rows})
    assert train["label_disagreements"]["count"] == 0
    assert sum(train["texts_per_class"].values()) == len(rows)
    assert report["tokens"]["tokenizer"] == "tiny" and report["tokens"]["prompts"] > 0
    assert "near_duplicates" in report
    assert (built_demo / "data" / "convert_report.txt").read_text().startswith("Conversion report")


def _profile(tmp_path, root, name="p.toml", **sections):
    return profiles.load(write_profile(tmp_path, demo_toml(root, **sections), name))


def test_smoke_sizing_is_stratified_and_keeps_all_texts(tmp_path, demo_root):
    sizing = {"mode": "custom", "samples": 20, "test_samples": 10, "seed": 3}
    profile = _profile(tmp_path, demo_root, sizing=sizing)
    run(profile, tmp_path / "run", lambda e: None, selected=DATA_STAGES)
    data = tmp_path / "run" / "data"
    images = _read_jsonl(data / "train_images.jsonl")
    assert len(images) == 20
    assert len({i["label"] for i in images}) == 10  # two per class
    chosen = {i["image_id"] for i in images}
    rows = _read_csv(demo_root / "prompts_train.csv")
    expected = [r["prompt"] for r in rows if int(r["dataset_index"]) in chosen]
    assert [t["text"] for t in _read_jsonl(data / "train_texts.jsonl")] == expected
    assert len(_read_tsv(data / "test_imgs.tsv")) == 10


def test_corrupt_image_is_skipped_counted_and_named(tmp_path, demo_profile):
    root = demo_profile.parent / "set"
    victim = sorted((root / "train" / "Glaucoma").glob("*.jpg"))[1]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated
    events = []
    run(
        profiles.load(demo_profile),
        demo_profile.parent / "run",
        events.append,
        selected=DATA_STAGES,
    )
    report = json.loads((demo_profile.parent / "run" / "data" / "convert_report.json").read_text())
    skipped = report["splits"]["train"]["images_skipped"]
    assert len(skipped) == 1
    assert any("skipped image at index" in e.message for e in events if e.level == "warning")
    bad_index = skipped[0]["index"]
    ids = [int(line[0]) for line in _read_tsv(demo_profile.parent / "run/data/train_imgs.tsv")]
    assert bad_index not in ids
    texts = _read_jsonl(demo_profile.parent / "run/data/train_texts.jsonl")
    assert all(t["image_ids"] != [bad_index] for t in texts)


def test_label_disagreement_is_reported(tmp_path, demo_profile):
    csv_path = demo_profile.parent / "set" / "prompts_test.csv"
    lines = csv_path.read_text().splitlines()
    lines[1] = lines[1].replace("Central Serous Chorioretinopathy [Color Fundus]", "Glaucoma", 1)
    csv_path.write_text("\n".join(lines) + "\n")
    run(
        profiles.load(demo_profile),
        demo_profile.parent / "run",
        lambda e: None,
        selected=DATA_STAGES,
    )
    report = json.loads((demo_profile.parent / "run/data/convert_report.json").read_text())
    disagreement = report["splits"]["test"]["label_disagreements"]
    assert disagreement["count"] == 1
    assert disagreement["examples"][0]["csv"] == "Glaucoma"


def test_paired_eyes_keep_left_right_and_patient_texts(tmp_path, paired_root):
    path = write_profile(tmp_path, demo_toml(paired_root, data=PAIRED_DATA))
    run(profiles.load(path), tmp_path / "run", lambda e: None, selected=DATA_STAGES)
    lines = _read_tsv(tmp_path / "run/data/train_imgs.tsv")
    assert len(lines) == 24
    assert sum(left != right for _, left, right in lines) > 20  # two real eyes
    texts = _read_jsonl(tmp_path / "run/data/train_texts.jsonl")
    assert texts[0]["text_left"].startswith("The left fundus")
    assert texts[0]["text_right"].startswith("The right fundus")
    from retclip_pipeline.lmdb_store import LmdbPairsDataset

    item = LmdbPairsDataset(tmp_path / "run/lmdb/train")[0]
    assert not item["same_image"]
    assert item["text_left"] == texts[0]["text_left"]


@pytest.mark.parametrize("workers", [1])
def test_conversion_is_deterministic(tmp_path, demo_root, workers, monkeypatch):
    from retclip_pipeline import convert

    first = _profile(tmp_path, demo_root, "a.toml")
    run(first, tmp_path / "run", lambda e: None, selected=DATA_STAGES)
    original = convert.make_pool
    monkeypatch.setattr(convert, "make_pool", lambda n=None: original(workers))
    again = _profile(tmp_path, demo_root, "b.toml")
    again.workdir = str(tmp_path / "run2")
    run(again, tmp_path / "run2", lambda e: None, selected=DATA_STAGES)
    for name in ("train_imgs.tsv", "train_texts.jsonl", "test_imgs.tsv"):
        assert (tmp_path / "run/data" / name).read_bytes() == (
            tmp_path / "run2/data" / name
        ).read_bytes()


def test_unloadable_tokenizer_is_reported_not_fatal(tmp_path, demo_root):
    profile = _profile(tmp_path, demo_root)
    profile.model.text = str(tmp_path / "no-such-tokenizer")
    run(profile, tmp_path / "run", lambda e: None, selected=DATA_STAGES)
    report = json.loads((tmp_path / "run/data/convert_report.json").read_text())
    assert "error" in report["tokens"]
    text = (tmp_path / "run/data/convert_report.txt").read_text()
    assert "prompt lengths: not measured" in text


def test_a_split_with_no_readable_image_is_a_user_error(tmp_path, demo_profile):
    from retclip_pipeline.errors import UserError

    for image in (demo_profile.parent / "set" / "test").rglob("*.jpg"):
        image.write_bytes(b"garbage")
    with pytest.raises(UserError, match="no image of the test split could be read"):
        run(
            profiles.load(demo_profile),
            demo_profile.parent / "run",
            lambda e: None,
            selected=DATA_STAGES,
        )
