"""The synthetic demo data: fundus-like images whose ten classes carry visual cues a small
model can learn, in the layouts `datasets.load_dataset(path)` reads like the hub sets, with
prompt CSVs in the user's schemas. Deterministic: the same seed gives the same pixels.

`scripts/make_seeds.py` writes them to seeds/; tests generate their own copies.
"""

from __future__ import annotations

import csv
import io
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

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


def _plain_name(label: str) -> str:
    if label == "Healthy":
        return "a healthy retina"
    return label.replace(" [Color Fundus]", "").lower()


def prompt_for(label: str, rng: random.Random) -> str:
    finding = rng.choice(FINDINGS[label])
    return rng.choice(TEMPLATES).format(
        finding=finding, finding_cap=finding[0].upper() + finding[1:], name=_plain_name(label)
    )


def _fundus_base(
    rng: random.Random, size: tuple[int, int], disc_right: bool, pale: float = 0.0
) -> tuple[Image.Image, tuple[int, int], int, tuple[int, int]]:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    cx, cy = width // 2 + rng.randint(-3, 3), height // 2 + rng.randint(-3, 3)
    radius = int(min(width, height) * 0.46)
    base = (rng.randint(170, 205), rng.randint(70, 95), rng.randint(25, 45))
    for step in range(radius, 0, -2):  # darker towards the rim, as in real photographs
        shade = 0.55 + 0.45 * (1 - step / radius) ** 0.5
        colour = tuple(int(c * shade + (255 - c) * pale * 0.5) for c in base)
        draw.ellipse([cx - step, cy - step, cx + step, cy + step], fill=colour)
    offset = int(radius * 0.45) * (1 if disc_right else -1)
    disc = (cx + offset, cy + rng.randint(-4, 4))
    return image, (cx, cy), radius, disc


def _vessels(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    disc: tuple[int, int],
    radius: int,
    width: int = 2,
    colour=(120, 20, 20),
) -> None:
    for angle in (0.6, 1.2, -0.6, -1.2, 2.5, -2.5):
        points = [disc]
        x, y = disc
        heading = angle + rng.uniform(-0.2, 0.2)
        for _ in range(6):
            heading += rng.uniform(-0.25, 0.25)
            x += math.cos(heading) * radius * 0.18
            y += math.sin(heading) * radius * 0.18
            points.append((int(x), int(y)))
        draw.line(points, fill=colour, width=width)


def _dots(draw, rng, centre, radius, count, colour, size) -> None:
    for _ in range(count):
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.1, 0.8) * radius
        x, y = centre[0] + math.cos(angle) * dist, centre[1] + math.sin(angle) * dist
        draw.ellipse([x - size, y - size, x + size, y + size], fill=colour)


def fundus_image(label: str, rng: random.Random, size=(200, 150), disc_right=True) -> Image.Image:
    """One synthetic photograph of `label`; `disc_right` places the optic disc (eye side)."""
    if label == "Pterygium":  # an anterior-segment photograph, not a fundus
        image = Image.new("RGB", size, (rng.randint(215, 235), rng.randint(200, 215), 200))
        draw = ImageDraw.Draw(image)
        cx, cy, r = size[0] // 2, size[1] // 2, int(size[1] * 0.3)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(90, 60, 35))
        draw.ellipse([cx - r // 3, cy - r // 3, cx + r // 3, cy + r // 3], fill=(10, 10, 10))
        tip = cx - r // 2 + rng.randint(-5, 5)
        draw.polygon(
            [(0, cy - r), (0, cy + r), (tip, cy + rng.randint(-4, 4))], fill=(205, 110, 110)
        )
        return image.filter(ImageFilter.GaussianBlur(0.8))
    pale = {"Myopia": 0.35, "Retinitis Pigmentosa": 0.15}.get(label, 0.0)
    image, centre, radius, disc = _fundus_base(rng, size, disc_right, pale)
    draw = ImageDraw.Draw(image)
    disc_r = int(radius * 0.13)
    macula = (centre[0] - (disc[0] - centre[0]) // 3, centre[1])
    if label == "Myopia":  # tigroid stripes
        for x in range(centre[0] - radius, centre[0] + radius, 7):
            draw.line(
                [(x, centre[1] - radius), (x + 12, centre[1] + radius)], fill=(150, 70, 40), width=2
            )
    vessel_width = 1 if label == "Retinitis Pigmentosa" else 2
    _vessels(draw, rng, disc, radius, vessel_width)
    draw.ellipse([macula[0] - 9, macula[1] - 9, macula[0] + 9, macula[1] + 9], fill=(110, 40, 15))
    disc_colour = (235, 215, 140) if label != "Retinitis Pigmentosa" else (235, 230, 200)
    if label == "Disc Edema":
        disc_r = int(disc_r * 1.6)
    draw.ellipse(
        [disc[0] - disc_r, disc[1] - disc_r, disc[0] + disc_r, disc[1] + disc_r], fill=disc_colour
    )
    cup = {"Glaucoma": 0.8}.get(label, 0.35)
    cup_r = int(disc_r * cup)
    draw.ellipse(
        [disc[0] - cup_r, disc[1] - cup_r, disc[0] + cup_r, disc[1] + cup_r], fill=(250, 245, 215)
    )
    if label == "Myopia":
        side = 1 if disc[0] < centre[0] else -1
        draw.chord(
            [
                disc[0] - disc_r * 2,
                disc[1] - disc_r * 2,
                disc[0] + disc_r * 2,
                disc[1] + disc_r * 2,
            ],
            90 + 90 * side - 60,
            90 + 90 * side + 60,
            fill=(240, 225, 190),
        )
    elif label == "Diabetic Retinopathy":
        _dots(draw, rng, centre, radius, rng.randint(14, 22), (140, 0, 0), 2)
        _dots(draw, rng, centre, radius, rng.randint(5, 9), (250, 240, 110), 2)
    elif label.startswith("Central Serous"):
        r = rng.randint(14, 18)
        draw.ellipse(
            [macula[0] - r, macula[1] - r, macula[0] + r, macula[1] + r],
            fill=(230, 150, 90),
            outline=(120, 50, 20),
            width=2,
        )
    elif label == "Macular Scar":
        r = rng.randint(11, 15)
        draw.ellipse(
            [macula[0] - r - 3, macula[1] - r - 3, macula[0] + r + 3, macula[1] + r + 3],
            fill=(235, 225, 200),
        )
        draw.ellipse(
            [macula[0] - r, macula[1] - r, macula[0] + r, macula[1] + r], fill=(45, 30, 20)
        )
    elif label == "Retinal Detachment":
        top = centre[1] - radius
        for k in range(5):
            y = top + 10 + k * 9
            draw.line(
                [
                    (centre[0] - radius + 15, y + rng.randint(-3, 3)),
                    (centre[0], y + 6),
                    (centre[0] + radius - 15, y + rng.randint(-3, 3)),
                ],
                fill=(175, 175, 170),
                width=6,
            )
    elif label == "Retinitis Pigmentosa":
        for _ in range(rng.randint(18, 26)):
            angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.55, 0.9) * radius
            x, y = centre[0] + math.cos(angle) * dist, centre[1] + math.sin(angle) * dist
            draw.line(
                [(x, y), (x + rng.randint(-5, 5), y + rng.randint(-5, 5))],
                fill=(15, 10, 10),
                width=2,
            )
    blur = 1.6 if label == "Disc Edema" else 0.6
    image = image.filter(ImageFilter.GaussianBlur(blur))
    mask = Image.new("L", size)  # a real camera sees nothing outside the round fundus
    ImageDraw.Draw(mask).ellipse(
        [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius], fill=255
    )
    return Image.composite(image, Image.new("RGB", size), mask)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


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
                (folder / f"{number:05d}.jpg").write_bytes(_jpeg(image))
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
    right_image, label) and ODIR-style prompt CSVs (root/prompts_<split>.csv)."""
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
                {"bytes": _jpeg(fundus_image(left, rng, size, False)), "path": None}
            )
            columns["right_image"].append(
                {"bytes": _jpeg(fundus_image(right, rng, size, True)), "path": None}
            )
            worse = left if left != "Healthy" else right
            columns["label"].append(names.index(worse))
            who = f"this {age}-year-old {sex.lower()}"
            eye = {
                side: f"The {side} fundus of {who} shows {rng.choice(FINDINGS[c])}."
                for side, c in (("left", left), ("right", right))
            }
            both = (
                f"Both eyes of {who} show {_plain_name(left)}."
                if left == right
                else f"In {who}, the left eye shows {_plain_name(left)} and the right eye "
                f"{_plain_name(right)}."
            )
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
