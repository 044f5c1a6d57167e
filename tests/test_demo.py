"""The synthetic demo sets: deterministic, and read by datasets like the hub sets."""

import filecmp

from retclip_pipeline.data import demo


def _same_tree(a, b) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def test_single_eye_demo_is_deterministic_and_reads_like_the_hub_set(tmp_path):
    import datasets

    for name in ("a", "b"):
        demo.write_single_eye(tmp_path / name, per_class={"train": 2, "test": 1})
    assert _same_tree(tmp_path / "a", tmp_path / "b")
    train = datasets.load_dataset(str(tmp_path / "a"), split="train")
    assert train.features["label"].names == demo.CLASSES
    assert len(train) == 20 and train[0]["image"].mode == "RGB"
    assert [train[i]["label"] for i in (0, 19)] == [0, 9]  # grouped by class, in order


def test_paired_demo_has_two_eyes_and_odir_columns(paired_root):
    import datasets

    train = datasets.load_dataset(str(paired_root), split="train")
    assert {"patient_id", "left_image", "right_image", "label"} <= set(train.column_names)
    header = (paired_root / "prompts_train.csv").read_text().splitlines()[0]
    assert header == (
        "patient_id,age,sex,left_keywords,right_keywords,prompt_left,prompt_right,"
        "prompt_patient,label"
    )
    # The CSV's class is the data set's: the worse eye's condition.
    import csv

    with open(paired_root / "prompts_train.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = train.features["label"].names
    assert [row["label"] for row in rows] == [names[label] for label in train["label"]]
    assert {row["left_keywords"] for row in rows} <= set(demo.PAIRED_CONDITIONS.values())


def test_classes_carry_cues_a_small_model_can_learn():
    """A nearest-centroid classifier on 16x12 thumbnails beats chance (10%) by far."""
    import random

    import numpy as np

    def features(label, rng):
        image = demo.fundus_image(label, rng, (100, 75), disc_right=rng.random() < 0.5)
        return np.asarray(image.resize((16, 12)), dtype=float).ravel() / 255

    rng = random.Random(7)
    centroids = np.stack(
        [np.mean([features(c, rng) for _ in range(8)], axis=0) for c in demo.CLASSES]
    )
    hits = 0
    for truth, label in enumerate(demo.CLASSES):
        for _ in range(5):
            guess = np.argmin(((centroids - features(label, rng)) ** 2).sum(axis=1))
            hits += guess == truth
    assert hits / 50 > 0.6
