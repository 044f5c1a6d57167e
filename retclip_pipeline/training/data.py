"""Training data: LMDB pairs with image transforms and tokenisation, in an order that a
resumed run can reproduce exactly (a seeded permutation per epoch, and augmentation seeded
per sample, so neither depends on worker processes or on where a run was cut off)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from ..data.lmdb_io import REBUILD, LmdbReader
from ..errors import DamagedOutput
from ..model.tokenizer import encode_texts

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def image_transform(size: int, augment: bool = False, hflip: bool = False) -> v2.Compose:
    """The reference's eval resize, or its train augmentation (flip a separate choice), on
    uint8 image tensors. Batches stay uint8 until `normalize` runs on the training device: a
    quarter of the bytes to move between processes, so the loader never starves a GPU."""
    bicubic = v2.InterpolationMode.BICUBIC
    steps: list[Any] = [
        v2.RandomResizedCrop(size, scale=(0.9, 1.0), interpolation=bicubic, antialias=True)
        if augment
        else v2.Resize((size, size), interpolation=bicubic, antialias=True)
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if augment:
        steps.append(ColorJitter(0.2))
        # The reference erases after normalising, with 0: the mean colour, as here.
        steps.append(v2.RandomErasing(0.1, value=[round(255 * m) for m in CLIP_MEAN]))
    return v2.Compose(steps)


GREY = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 luma, as PIL's "L" conversion


class ColorJitter:
    """Brightness, contrast and saturation each scaled by a factor in [1-a, 1+a], in random
    order, as torchvision's ColorJitter(a, a, a) does; in one float pass instead of a round
    trip to uint8 per operation (three times faster, and this runs for every image)."""

    def __init__(self, amount: float):
        self.amount = amount

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        factors = torch.empty(3).uniform_(1 - self.amount, 1 + self.amount).tolist()
        x = image.float()
        for op in torch.randperm(3).tolist():
            if op == 0:  # brightness
                x.mul_(factors[0])
            else:
                grey = torch.tensordot(GREY, x, dims=1).unsqueeze(0)
                anchor = grey.mean() if op == 1 else grey  # contrast, saturation
                x = (x - anchor).mul_(factors[op]).add_(anchor)
            x.clamp_(0, 255)
        return x.round_().to(torch.uint8)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> the float input the towers expect (CLIP mean and std)."""
    mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def decode(b64: str) -> torch.Tensor:
    """A base64 JPEG from the LMDB as a 3 x H x W uint8 tensor."""
    with Image.open(io.BytesIO(base64.urlsafe_b64decode(b64))) as image:
        pixels = np.array(image if image.mode == "RGB" else image.convert("RGB"))
    return torch.from_numpy(pixels).permute(2, 0, 1)


class TrainPairs:
    """Items keyed by (index, epoch): the key seeds the sample's augmentation."""

    def __init__(self, split_dir: Path, transform: v2.Compose, seed: int):
        self.reader = LmdbReader(split_dir)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return self.reader.num_samples

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, epoch = key
        patient_id, text_id, text = self.reader.pair(index)
        images = self.reader.images_b64(patient_id)
        if images is None:
            raise DamagedOutput(
                f"{self.reader.split_dir}: pair {index} names patient {patient_id!r}, which has "
                f"no images: {REBUILD}"
            )
        left_b64, right_b64 = images
        same = left_b64 == right_b64
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone: torch.manual_seed also queues CUDA seeding, which
            # costs more than the augmentation itself.
            torch.default_generator.manual_seed(hash((self.seed, epoch, index)) & 0x7FFFFFFF)
            left = self.transform(decode(left_b64))
            right = left if same else self.transform(decode(right_b64))
        item = {"left": left, "right": right, "same_image": same, "text": text, "text_id": text_id}
        eye_texts = self.reader.eye_texts(text_id) if self.reader.paired_texts else None
        if eye_texts:
            item["text_left"], item["text_right"] = eye_texts
        return item


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
    from ..data.converted import records

    labels = {}
    if texts_jsonl.exists():
        for _, record, _ in records(texts_jsonl, ("text_id",)):
            if "label" in record:
                labels[record["text_id"]] = record["label"]
    return labels


def epoch_loader(dataset, collate, cfg, device, epoch, start, batch_size, rank=0, ranks=1):
    """The batches of one epoch from batch `start` on, this rank's share of them."""
    from .stop import ignore_interrupts

    sampler = EpochBatches(len(dataset), batch_size, cfg.seed, epoch, start, rank, ranks)
    # A private generator: making the loader must not draw on the global RNG, or a
    # resumed run would see other dropout masks than an uninterrupted one.
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed + epoch),
        # Ctrl-C reaches the whole process group: the workers leave it to the trainer,
        # which stops after the current step (a worker that died of it would break
        # the step being finished).
        worker_init_fn=ignore_interrupts,
    )
