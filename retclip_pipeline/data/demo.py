"""The synthetic demo data: fundus-like images (demo_images.py) whose ten classes carry visual
cues a small model can learn, in the layouts `datasets.load_dataset(path)` reads like the hub sets, with
prompt CSVs in the user's schemas. Deterministic: the same seed gives the same pixels.

`scripts/make_seeds.py` writes them to seeds/; tests generate their own copies.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from .demo_images import fundus_image, jpeg_bytes

CLASSES = [
    "Central Serous Chorioretinopathy [Color Fundus]",
    "Diabetic Retinopathy",
    "Disc Edema",
    "Glaucoma",
    "Healthy",
    "Macular Scar",
    "Myopia",
    "Pterygium",
    "Retinal Detachment",
    "Retinitis Pigmentosa",
]

# Per class: findings that fill the prompt templates (wording varies, the class is clear).
FINDINGS = {
    CLASSES[0]: [
        "a round serous detachment at the macula",
        "a dome-shaped blister of subretinal fluid",
        "a well-demarcated neurosensory detachment near the fovea",
    ],
    CLASSES[1]: [
        "scattered microaneurysms and dot haemorrhages",
        "hard exudates with retinal haemorrhages",
        "multiple red dots and yellow exudates across the posterior pole",
    ],
    CLASSES[2]: [
        "a swollen optic disc with blurred margins",
        "elevated, hyperaemic disc margins",
        "papilloedema with obscured disc borders",
    ],
    CLASSES[3]: [
        "an enlarged optic cup with a thin neuroretinal rim",
        "a high cup-to-disc ratio",
        "glaucomatous cupping of the optic nerve head",
    ],
    CLASSES[4]: [
        "a normal disc, macula and vessels",
        "no pathological findings",
        "healthy retinal vasculature and a sharp optic disc",
    ],
    CLASSES[5]: [
        "a pigmented scar at the macula",
        "a fibrotic macular scar with a pale rim",
        "chorioretinal scarring involving the fovea",
    ],
    CLASSES[6]: [
        "a tessellated fundus with a peripapillary crescent",
        "myopic tigroid fundus changes",
        "thinning of the choroid with a temporal crescent",
    ],
    CLASSES[7]: [
        "a fibrovascular wedge growing onto the cornea",
        "a triangular conjunctival growth",
        "a pterygium encroaching on the limbus",
    ],
    CLASSES[8]: [
        "a grey elevated retina with folds",
        "a bullous detachment of the superior retina",
        "undulating detached retina with corrugated folds",
    ],
    CLASSES[9]: [
        "bone-spicule pigmentation in the mid-periphery",
        "attenuated vessels with waxy disc pallor",
        "peripheral pigment clumping and vessel narrowing",
    ],
}

TEMPLATES = [
    "Colour fundus photograph showing {finding}, consistent with {name}.",
    "The fundus reveals {finding}; findings suggest {name}.",
    "Examination demonstrates {finding}. Impression: {name}.",
    "{finding_cap} is noted, in keeping with {name}. Follow-up is advised.",
    "Retinal imaging shows {finding}, a typical appearance of {name}.",
]


def patient_text(who: str, left: str, right: str) -> str:
    """The patient-level prompt for two eyes' conditions (the demo's and the ODIR fixture's)."""
    if left == right:
        return f"Both eyes of {who} show {_plain_name(left)}."
    return (
        f"In {who}, the left eye shows {_plain_name(left)} and the right eye {_plain_name(right)}."
    )


def _plain_name(label: str) -> str:
    if label == "Healthy":
        return "a healthy retina"
    return label.replace(" [Color Fundus]", "").lower()


def prompt_for(label: str, rng: random.Random) -> str:
    finding = rng.choice(FINDINGS[label])
    return rng.choice(TEMPLATES).format(
        finding=finding, finding_cap=finding[0].upper() + finding[1:], name=_plain_name(label)
    )


def write_single_eye(
    root: Path, per_class: dict[str, int] | None = None, seed: int = 0, size=(200, 150)
) -> None:
    """An image-folder data set (root/<split>/<class>/NNNNN.jpg) and its prompt CSVs
    (root/prompts_<split>.csv: dataset_index,label,prompt). Like the user's train CSV, some
    images have two prompts and a few have none."""
    per_class = per_class or {"train": 40, "test": 12}
    for split, count in per_class.items():
        rng = random.Random(f"{seed}:{split}")
        rows = []
        index = 0
        for label in CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(count):
                image = fundus_image(label, rng, size, disc_right=rng.random() < 0.5)
                (folder / f"{number:05d}.jpg").write_bytes(jpeg_bytes(image))
                texts = 1
                if split == "train":
                    draw = rng.random()
                    texts = 0 if draw < 0.04 else 2 if draw < 0.14 else 1
                rows += [(index, label, prompt_for(label, rng)) for _ in range(texts)]
                index += 1
        with open(root / f"prompts_{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["dataset_index", "label", "prompt"])
            writer.writerows(rows)


PAIRED_CONDITIONS = {
    "Healthy": "normal fundus",
    "Diabetic Retinopathy": "moderate non proliferative retinopathy",
    "Glaucoma": "glaucoma",
    "Myopia": "pathological myopia",
    "Macular Scar": "macular scar",
    "Retinitis Pigmentosa": "retinitis pigmentosa",
}


def write_paired(
    root: Path, patients: dict[str, int] | None = None, seed: int = 0, size=(160, 120)
) -> None:
    """A parquet data set (root/data/<split>-00000-of-00001.parquet; patient_id, left_image,
    right_image, label) and ODIR-style prompt CSVs (root/prompts_<split>.csv) that give each
    eye's condition (left_keywords, right_keywords) and the patient's class (label: the
    worse eye's), so that class-level and per-eye figures exist beside instance-level ones."""
    import datasets

    patients = patients or {"train": 100, "test": 30}
    names = list(PAIRED_CONDITIONS)
    features = datasets.Features(
        {
            "patient_id": datasets.Value("int64"),
            "left_image": datasets.Image(),
            "right_image": datasets.Image(),
            "label": datasets.ClassLabel(names=names),
        }
    )
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, count in patients.items():
        rng = random.Random(f"{seed}:paired:{split}")
        columns: dict[str, list] = {k: [] for k in features}
        rows = []
        for patient in range(count):
            left, right = rng.choice(names), rng.choice(names)
            if rng.random() < 0.5:
                right = left  # many conditions are bilateral
            age, sex = rng.randint(30, 85), rng.choice(["Female", "Male"])
            # In a left-eye photograph the optic disc sits on the left.
            columns["patient_id"].append(patient)
            columns["left_image"].append(
                {"bytes": jpeg_bytes(fundus_image(left, rng, size, False)), "path": None}
            )
            columns["right_image"].append(
                {"bytes": jpeg_bytes(fundus_image(right, rng, size, True)), "path": None}
            )
            worse = left if left != "Healthy" else right
            columns["label"].append(names.index(worse))
            who = f"this {age}-year-old {sex.lower()}"
            eye = {
                side: f"The {side} fundus of {who} shows {rng.choice(FINDINGS[c])}."
                for side, c in (("left", left), ("right", right))
            }
            both = patient_text(who, left, right)
            rows.append(
                [
                    patient,
                    age,
                    sex,
                    PAIRED_CONDITIONS[left],
                    PAIRED_CONDITIONS[right],
                    eye["left"],
                    eye["right"],
                    both,
                    worse,
                ]
            )
        dataset = datasets.Dataset.from_dict(columns, features=features)
        dataset.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
        with open(root / f"prompts_{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                [
                    "patient_id",
                    "age",
                    "sex",
                    "left_keywords",
                    "right_keywords",
                    "prompt_left",
                    "prompt_right",
                    "prompt_patient",
                    "label",
                ]
            )
            writer.writerows(rows)


def tiny_profile(name: str, epochs: int) -> str:
    """A profile in `profiles/` over a demo set in `seeds/demo` beside it: 32 px images and
    the tiny towers, quick on a CPU (the wizard's tests and screenshots use it)."""
    return f"""\
name = "{name}"
workdir = "../runs/{name}"

[hub]
dataset = "../seeds/demo"

[data]
train_csv = "../seeds/demo/prompts_train.csv"
test_csv = "../seeds/demo/prompts_test.csv"
image_size = 32

[model]
vision = "tiny"
text = "tiny"
context_length = 24

[train]
batch_size = 16
epochs = {epochs}
workers = 0
save_every = 1
"""
