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


def _load(path: Path, on_bad_row: str = "error") -> profiles.Profile:
    profile = profiles.load(path)
    profile.data.on_bad_row = on_bad_row
    return profile


def _truncate_an_image(profile_path: Path) -> tuple[Path, bytes]:
    """Damage one train image; returns it and its good bytes."""
    victim = sorted((profile_path.parent / "set" / "train" / "Glaucoma").glob("*.jpg"))[1]
    good = victim.read_bytes()
    victim.write_bytes(good[:200])  # truncated
    return victim, good


def test_corrupt_image_is_skipped_counted_and_named(tmp_path, demo_profile):
    # With "skip"; the default, "error", stops the run (the tests below).
    _truncate_an_image(demo_profile)
    events = []
    run(
        _load(demo_profile, on_bad_row="skip"),
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
    from retclip_pipeline.data.lmdb_io import LmdbPairsDataset

    item = LmdbPairsDataset(tmp_path / "run/lmdb/train")[0]
    assert not item["same_image"]
    assert item["text_left"] == texts[0]["text_left"]


@pytest.mark.parametrize("workers", [1])
def test_conversion_is_deterministic(tmp_path, demo_root, workers, monkeypatch):
    from retclip_pipeline.data import conversion as convert

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


def _stop_on_the_corrupt_image(demo_profile, monkeypatch) -> tuple[Path, bytes, list]:
    """Convert with one truncated image under the default on_bad_row = "error", in chunks of
    8 images. Returns the image, its good bytes, and the list that records each chunk
    converted from then on as (split, chunk number)."""
    from retclip_pipeline.data import conversion
    from retclip_pipeline.errors import UserError
    from retclip_pipeline.stages import convert
    from retclip_pipeline.state import RunState

    monkeypatch.setattr(conversion, "CHUNK", 8)
    victim, good = _truncate_an_image(demo_profile)
    workdir = demo_profile.parent / "run"
    with pytest.raises(UserError) as caught:
        run(_load(demo_profile), workdir, lambda e: None, selected=DATA_STAGES)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("1 image(s) could not be converted: train split, index ")
    assert "(prompts_train.csv line " in message and "truncated" in message.lower()
    assert 'fix the image or remove its CSV row(s), or set data.on_bad_row = "skip"' in message
    assert RunState.load(workdir).status("convert") == "failed"
    assert not (workdir / "data" / "train_imgs.tsv").exists()
    finished = list((workdir / "data" / ".parts").rglob("*.json"))
    assert len(finished) == 8 + 4  # 59 train and 30 test images: every chunk is kept
    converted = []
    original = convert._write_chunk

    def spy(parts, number, *rest):
        converted.append((parts.name, number))
        return original(parts, number, *rest)

    monkeypatch.setattr(convert, "_write_chunk", spy)
    return victim, good, converted


def test_corrupt_image_stops_the_run_and_a_fixed_rerun_resumes(demo_profile, monkeypatch):
    victim, good, converted = _stop_on_the_corrupt_image(demo_profile, monkeypatch)
    victim.write_bytes(good)
    workdir = demo_profile.parent / "run"
    run(_load(demo_profile), workdir, lambda e: None, selected=DATA_STAGES)
    report = json.loads((workdir / "data" / "convert_report.json").read_text())
    assert report["splits"]["train"]["images_skipped"] == []
    assert (
        report["splits"]["train"]["images_written"] == report["splits"]["train"]["images_selected"]
    )
    assert len(converted) == 1 and converted[0][0] == "train"  # only the chunk it was in


def test_switching_to_skip_after_a_stop_resumes(demo_profile, monkeypatch):
    _, _, converted = _stop_on_the_corrupt_image(demo_profile, monkeypatch)
    workdir = demo_profile.parent / "run"
    events = []
    run(_load(demo_profile, on_bad_row="skip"), workdir, events.append, selected=DATA_STAGES)
    assert converted == []  # every finished chunk is used as it is
    assert any("skipped image at index" in e.message for e in events if e.level == "warning")
    report = json.loads((workdir / "data" / "convert_report.json").read_text())
    assert len(report["splits"]["train"]["images_skipped"]) == 1
    assert (
        report["splits"]["train"]["images_written"]
        == report["splits"]["train"]["images_selected"] - 1
    )


@pytest.mark.parametrize("tokenizer", ["tiny", "missing"])
def test_report_is_the_same_byte_for_byte_on_a_second_conversion(demo_profile, tokenizer):
    # An unreadable image's reason and a tokenizer's load error once quoted object reprs.
    (sorted((demo_profile.parent / "set" / "test").rglob("*.jpg"))[0]).write_bytes(b"garbage")
    reports = []
    for name in ("one", "two"):
        profile = _load(demo_profile, on_bad_row="skip")
        if tokenizer == "missing":
            profile.model.text = str(demo_profile.parent / "no-such-tokenizer")
        workdir = demo_profile.parent / name
        run(profile, workdir, lambda e: None, selected=["convert"])
        text = (workdir / "data" / "convert_report.json").read_text(encoding="utf-8")
        reports.append(text.replace(str(workdir), "<workdir>"))
    assert reports[0] == reports[1]
    assert "0x" not in reports[0]
    report = json.loads(reports[0])
    assert report["splits"]["test"]["images_skipped"][0]["reason"].startswith("not an image")
    assert ("error" in report["tokens"]) == (tokenizer == "missing")
