"""Which images a run converts: the splits the profile names, and how many images each
split gives at the profile's sizing, counted from the CSVs alone (for plans and estimates)."""

from __future__ import annotations

from typing import Any

from ..profile import Profile
from .prompts import read_prompts, stratified_sample


def split_plan(profile: Profile) -> list[tuple[str, str, str]]:
    """(our split name, CSV path, data set split) for each split the profile converts."""
    data = profile.data
    splits = [("train", data.train_csv, data.train_split)]
    if data.test_csv:
        splits.append(("test", data.test_csv, data.test_split))
    return splits


def sample_size(profile: Profile, name: str, available: int, train: tuple[int, int] | None) -> int:
    """Images to convert from a split: the sizing for train; for test, its own count or the
    fraction train took (`train` = (sampled, available) of the train split)."""
    if name == "train":
        return profile.train_samples(available)
    return profile.test_samples(available, train[0] / train[1] if train else 1.0)


def plan_counts(profile: Profile) -> dict[str, Any]:
    """Rows and sampled images per split, from the CSVs alone."""
    counts: dict[str, Any] = {}
    train = None
    for name, csv, _ in split_plan(profile):
        table = read_prompts(profile.resolve(csv), profile.data, None)
        groups = table.by_index()
        count = sample_size(profile, name, len(groups), train)
        train = train or (count, len(groups))
        # the images the conversion will choose (the same seeded choice), and their texts
        labels = {index: rows[0].label for index, rows in groups.items()}
        smoke = profile.sizing.mode == "smoke"
        chosen = stratified_sample(labels, count, profile.sizing.seed, runs=smoke)
        counts[name] = {
            "rows": table.rows_read,
            "images": len(groups),
            "sampled": count,
            "pairs": sum(len(groups[index]) for index in chosen),
        }
    return counts


def split_pairs(profile: Profile) -> dict[str, int]:
    """Pairs each split will hold at the profile's sizing: the texts of the images the
    conversion chooses (bad rows data.on_bad_row = "skip" leaves out are not counted)."""
    return {name: counts["pairs"] for name, counts in plan_counts(profile).items()}


def train_pairs(profile: Profile) -> int:
    return split_pairs(profile)["train"]
