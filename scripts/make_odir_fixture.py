"""Regenerate tests/fixtures/odir: a tiny stand-in for ODIR-5K in its own layout.

python scripts/make_odir_fixture.py

ODIR's annotation sheet (ID, Patient Age, Patient Sex, Left-Fundus, Right-Fundus,
Left-Diagnostic Keywords, Right-Diagnostic Keywords, N, D, G, C, A, H, M, O) with the
prompt columns a user adds (prompt_left, prompt_right, prompt_patient), split into a train
and a test sheet; the photographs as 32 x 32 JPEGs named as ODIR's, `<ID>_left.jpg` and
`<ID>_right.jpg`, in `Training Images/`. Deterministic.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from retclip_pipeline.data.demo import FINDINGS, PAIRED_CONDITIONS, patient_text
from retclip_pipeline.data.demo_images import fundus_image, jpeg_bytes

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "odir"
# ODIR's eight labels, and the one each demo condition sets.
LETTERS = ("N", "D", "G", "C", "A", "H", "M", "O")
LETTER = {
    "Healthy": "N",
    "Diabetic Retinopathy": "D",
    "Glaucoma": "G",
    "Myopia": "M",
}
HEADER = [
    "ID",
    "Patient Age",
    "Patient Sex",
    "Left-Fundus",
    "Right-Fundus",
    "Left-Diagnostic Keywords",
    "Right-Diagnostic Keywords",
    *LETTERS,
    "prompt_left",
    "prompt_right",
    "prompt_patient",
]


def write(root: Path = ROOT, patients: dict[str, range] | None = None, seed: int = 0) -> None:
    patients = patients or {"train": range(0, 8), "test": range(8, 12)}
    conditions = list(LETTER)
    images = root / "Training Images"
    images.mkdir(parents=True, exist_ok=True)
    for split, ids in patients.items():
        rng = random.Random(f"{seed}:odir:{split}")
        rows = []
        for number, patient in enumerate(ids):
            # Every condition in both splits, each eye both sides of the pairing.
            left = conditions[number % len(conditions)]
            right = left if number % 2 else conditions[(number + 1) % len(conditions)]
            age, sex = rng.randint(30, 85), rng.choice(["Female", "Male"])
            for side, condition in (("left", left), ("right", right)):
                picture = fundus_image(condition, rng, (48, 36), disc_right=side == "right")
                picture = picture.resize((32, 32))
                (images / f"{patient}_{side}.jpg").write_bytes(jpeg_bytes(picture, 70))
            who = f"this {age}-year-old {sex.lower()}"
            flags = {LETTER[left], LETTER[right]}
            if flags != {"N"}:
                flags.discard("N")  # ODIR: N only when both eyes are normal
            both = patient_text(who, left, right)
            rows.append(
                [
                    patient,
                    age,
                    sex,
                    f"{patient}_left.jpg",
                    f"{patient}_right.jpg",
                    PAIRED_CONDITIONS[left],
                    PAIRED_CONDITIONS[right],
                    *(int(letter in flags) for letter in LETTERS),
                    f"The left fundus of {who} shows {rng.choice(FINDINGS[left])}.",
                    f"The right fundus of {who} shows {rng.choice(FINDINGS[right])}.",
                    both,
                ]
            )
        with open(root / f"odir_{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            writer.writerows(rows)


if __name__ == "__main__":
    write()
