"""Training data: LMDB pairs with image transforms and tokenisation, in an order that a
resumed run can reproduce exactly (a seeded permutation per epoch, and augmentation seeded
per sample, so neither depends on worker processes or on where a run was cut off)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision import transforms as T

from ..lmdb_store import LmdbPairsDataset
from ..model.tokenizer import encode_texts

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def image_transform(size: int, augment: bool = False, hflip: bool = False) -> T.Compose:
    """The reference's eval transform, or its train augmentation (flip a separate choice)."""
    steps: list[Any] = []
    if augment:
        steps.append(
            T.RandomResizedCrop(size, scale=(0.9, 1.0), interpolation=T.InterpolationMode.BICUBIC)
        )
    else:
        steps.append(T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC))
    if hflip:
        steps.append(T.RandomHorizontalFlip(0.5))
    if augment:
        steps.append(T.ColorJitter(0.2, 0.2, 0.2))
    steps += [T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)]
    if augment:
        steps.append(T.RandomErasing(0.1))
    return T.Compose(steps)


class TrainPairs:
    """Items keyed by (index, epoch): the key seeds the sample's augmentation."""

    def __init__(self, split_dir: Path, transform: T.Compose, seed: int):
        self.pairs = LmdbPairsDataset(split_dir)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, epoch = key
        item = self.pairs[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, epoch, index)) & 0x7FFFFFFF)
            left = self.transform(item["left"])
            right = left if item["same_image"] else self.transform(item["right"])
        return item | {"left": left, "right": right}


class EpochBatches(torch.utils.data.Sampler):
    """This process's share of the batches of one epoch: a permutation seeded by (seed,
    epoch), cut into full global batches of batch_size x ranks, of which rank r takes the
    r-th slice; starting at `start` (the first batch a resumed run has not seen)."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        epoch: int,
        start: int = 0,
        rank: int = 0,
        ranks: int = 1,
    ):
        self.size, self.batch_size, self.seed, self.epoch = size, batch_size, seed, epoch
        self.start, self.rank, self.ranks = start, rank, ranks

    def __len__(self) -> int:
        return max(0, self.size // (self.batch_size * self.ranks) - self.start)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        step = self.batch_size * self.ranks
        for number in range(self.start, self.size // step):
            first = number * step + self.rank * self.batch_size
            yield [(i, self.epoch) for i in order[first : first + self.batch_size]]


@dataclass
class Collate:
    """Stacks images and tokenises texts (in the worker processes)."""

    tokenizer: Any
    context_length: int

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        same = all(item["same_image"] for item in items)
        batch = {
            "left": torch.stack([item["left"] for item in items]),
            "right": None if same else torch.stack([item["right"] for item in items]),
            "text_ids": torch.tensor([item["text_id"] for item in items]),
        }
        batch["ids"], batch["mask"] = encode_texts(
            self.tokenizer, [item["text"] for item in items], self.context_length
        )
        if all("text_left" in item for item in items):
            for side in ("left", "right"):
                batch[f"ids_{side}"], batch[f"mask_{side}"] = encode_texts(
                    self.tokenizer, [item[f"text_{side}"] for item in items], self.context_length
                )
        return batch


def text_labels(texts_jsonl: Path) -> dict[int, str]:
    """text_id -> class label, where the conversion recorded one."""
    labels = {}
    if texts_jsonl.exists():
        for line in texts_jsonl.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if "label" in record:
                labels[record["text_id"]] = record["label"]
    return labels
