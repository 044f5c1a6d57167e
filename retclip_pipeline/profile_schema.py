"""The profile's schema: its sections and keys, each with a default, a one-line help and
the values it allows, and the rules that follow from the values (sample counts, the batch
size a smoke run trains at). Reading, checking and writing a profile file is profile.py."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import profile_values as rules

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def opt(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    min: float | None = None,
    max: float | None = None,
    file: bool = False,
    factory: bool = False,
    neutral: bool = False,
    rule: Any = None,
) -> Any:
    """A profile key: its default, a one-line help, and what values it allows. Mutable
    defaults (lists, tables) are copied for each profile (`factory`). A `neutral` key changes
    how a run goes, never what it produces: it is left out of the stages' fingerprints. A
    `rule` gives the problem with a value its type and range allow, or None."""
    meta = {
        "help": help,
        "choices": choices,
        "min": min,
        "max": max,
        "file": file,
        "neutral": neutral,
        "rule": rule,
    }
    if factory:
        import copy

        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class HubSection:
    dataset: str = opt(
        "Peacein/color-fundus-eye",
        "Hugging Face data set id, or a local folder that datasets.load_dataset reads",
    )
    token_env: str = opt(
        "HF_TOKEN",
        "environment variable that holds the token (never the token itself)",
        rule=rules.env_name,
    )
    use_stored_login: bool = opt(True, "fall back to the token stored by `hf auth login`")
    fetch: str = opt(
        "auto",
        "hub data sets: download (whole parquet shards into the hub cache), stream (only "
        "the row groups holding wanted rows), auto: stream for smoke, download otherwise",
        choices=("auto", "download", "stream"),
    )
    fetch_workers: int = opt(4, "download: shards fetched in parallel", min=1, max=32)


@dataclass
class DataSection:
    train_csv: str = opt("", "prompt CSV for the train split", file=True)
    test_csv: str = opt("", "prompt CSV for the test split (empty: no test split)", file=True)
    train_split: str = opt("train", "data set split the train CSV indexes")
    test_split: str = opt("test", "data set split the test CSV indexes")
    eyes: str = opt(
        "single",
        "single: one image per row, used for both eyes; paired: left and right images",
        choices=("single", "paired"),
    )
    join: str = opt(
        "index",
        "how a CSV row finds its images: index (index_column is the data set row), key "
        "(key_column matches the data set's dataset_key_column), file (the CSV names each "
        "image file in the hub.dataset folder, as ODIR's Left-Fundus and Right-Fundus do)",
        choices=("index", "key", "file"),
    )
    index_column: str = opt(
        "dataset_index", "CSV column with the row index into the data set split"
    )
    key_column: str = opt(
        "", "join = key or file: CSV column with the patient (or image) id, ODIR's ID"
    )
    dataset_key_column: str = opt("", "join = key: data set column holding the same ids")
    file_column: str = opt("", "join = file, single: CSV column with the image file name")
    left_file_column: str = opt("", "join = file, paired: CSV column with the left image file name")
    right_file_column: str = opt(
        "", "join = file, paired: CSV column with the right image file name"
    )
    label_column: str = opt("label", "CSV column with the class name (empty: none)")
    text_column: str = opt(
        "prompt", "CSV column with the text (the patient-level text when paired)"
    )
    left_text_column: str = opt("", "paired: CSV column with the left-eye text")
    right_text_column: str = opt("", "paired: CSV column with the right-eye text")
    left_label_column: str = opt(
        "", "paired: CSV column with the left eye's class, for per-eye figures (empty: none)"
    )
    right_label_column: str = opt(
        "", "paired: CSV column with the right eye's class, for per-eye figures (empty: none)"
    )
    image_column: str = opt("image", "single: data set column holding the image")
    left_image_column: str = opt("left_image", "paired: data set column holding the left image")
    right_image_column: str = opt("right_image", "paired: data set column holding the right image")
    dataset_label_column: str = opt("label", "data set column with the class label (empty: none)")
    image_size: int = opt(224, "side of the square images written, in pixels", min=16, max=2048)
    crop_border: bool = opt(True, "crop the black border around the fundus before resizing")
    jpeg_quality: int = opt(95, "JPEG quality of the images written", min=50, max=100)
    # Neutral: a conversion it lets finish writes the same files either way, and switching to
    # "skip" after an error must resume from the finished part files, not start afresh.
    on_bad_row: str = opt(
        "error",
        "a bad CSV row or an unreadable image stops the run (error) or is skipped and "
        "reported (skip)",
        choices=("error", "skip"),
        neutral=True,
    )
    near_duplicate_bits: int = opt(
        12, "perceptual-hash distance (of 256 bits) counted as a near duplicate", min=0, max=128
    )


@dataclass
class SizingSection:
    mode: str = opt(
        "full",
        "smoke: 100 samples; full: every sample; custom: `samples` of them",
        choices=("smoke", "full", "custom"),
    )
    samples: int = opt(100, "custom: train samples (images, or patients when paired)", min=1)
    test_samples: int = opt(
        0, "test samples for smoke/custom (0: the train fraction of the test split)", min=0
    )
    seed: int = opt(0, "seed of the stratified sample", min=0)


@dataclass
class ModelSection:
    vision: str = opt("vit-b-16", "image tower: a preset name, hub id or local folder")
    text: str = opt("chinese-roberta", "text tower: a preset name, hub id or local folder")
    context_length: int = opt(
        100, "text tokens per prompt, [CLS] and [SEP] included", min=8, max=512
    )
    init: str = opt(
        "",
        "start from a RET-CLIP or Chinese-CLIP checkpoint (empty: the towers' pretrained weights)",
        file=True,
    )
    freeze: str = opt(
        "none",
        "towers kept fixed: none, vision, text, or both (train the heads)",
        choices=("none", "vision", "text", "both"),
    )


GPU_CHOICES = ("", "a100-40gb", "a100-80gb", "h100", "l4", "t4")


@dataclass
class TrainSection:
    batch_size: int = opt(
        128, "pairs per optimizer step on each device (before accumulation)", min=2
    )
    accumulation: int = opt(1, "batches accumulated per optimizer step", min=1)
    epochs: int = opt(10, "passes over the train split", min=1)
    lr: float = opt(3e-5, "peak learning rate", min=0.0, max=1.0)
    # At most 1: AdamW shrinks each weight by lr * weight_decay a step; beyond, training
    # diverges at once and the loss turns nan (advice that named train.lr only).
    weight_decay: float = opt(
        0.001, "AdamW weight decay (not on norms, biases, temperatures)", min=0.0, max=1.0
    )
    warmup_steps: int = opt(50, "optimizer steps of linear warm-up before the cosine decay", min=0)
    precision: str = opt(
        "auto",
        "auto: bf16 on a GPU that has it, else fp16; fp32 on the CPU",
        choices=("auto", "bf16", "fp16", "fp32"),
    )
    grad_checkpointing: bool = opt(False, "recompute activations to save GPU memory")
    compile: bool = opt(
        False,
        "torch.compile the model: fused kernels, faster steps on a GPU after a minute or two "
        "of compiling",
        neutral=True,
    )
    oom_retry: bool = opt(
        False,
        "on a GPU out-of-memory error, retry at the largest batch that "
        "fits, with the accumulation that keeps the global batch",
    )
    clip_grad_norm: float = opt(0.0, "clip the gradient norm at this value (0: off)", min=0.0)
    augment: bool = opt(False, "random resized crop, colour jitter and random erasing")
    hflip: bool = opt(False, "random horizontal flips (they mirror the optic disc side)")
    save_every: int = opt(2, "keep epoch{N}.pt every this many epochs", min=1)
    # Neutral: the weights trained are the same whatever number of old epoch files stay.
    keep_last: int = opt(
        0,
        "keep only the newest N epoch{N}.pt files (0: all); best.pt and epoch_latest.pt stay",
        min=0,
        neutral=True,
    )
    best_metric: str = opt(
        "",
        "validation figure best.pt is kept by (early stopping watches it too; losses lower "
        "is better, recalls higher). Empty: val_i2t_class when the test texts have labels, "
        "else val_loss",
        choices=("", "val_loss", "val_i2t", "val_t2i", "val_i2t_class"),
    )
    save_every_steps: int = opt(
        0, "also write epoch_latest.pt every this many steps (0: off)", min=0
    )
    early_stop: str = opt(
        "",
        "stop when this validation figure stops improving (empty: off)",
        choices=("", "val_loss", "val_i2t", "val_t2i", "val_i2t_class"),
    )
    patience: int = opt(3, "epochs without improvement before early stopping", min=1)
    # At most 2**32 - 1, numpy's seed range: the data order's seed is derived from it.
    seed: int = opt(0, "seed of initialisation, data order and augmentation", min=0, max=2**32 - 1)
    report_to: list[str] = opt(
        [],
        "experiment trackers to log to: tensorboard (in <run>/tensorboard/<name>), wandb, "
        "mlflow; each an optional extra (pip install 'retclip[tensorboard]')",
        factory=True,
        neutral=True,
        rule=rules.trackers,
    )
    workers: int = opt(2, "data loader worker processes", min=0, max=64, neutral=True)
    device: str = opt(
        "auto", "auto: the GPU when there is one; cpu; cuda", choices=("auto", "cpu", "cuda")
    )
    gpu: str = opt(
        "",
        "the GPU to estimate memory and time for besides this machine's device (--gpu): "
        "a100-40gb, a100-80gb, h100, l4 or t4",
        choices=GPU_CHOICES,
        neutral=True,
    )


DEFAULT_TEMPLATES = [
    "a colour fundus photograph of {}.",
    "fundus photograph showing {}.",
    "retinal image consistent with {}.",
]


@dataclass
class EvalSection:
    checkpoint: str = opt(
        "",
        'checkpoint to evaluate (empty: the training\'s best.pt, else its latest; "init": '
        "the untrained starting weights, a zero-shot baseline)",
        file=True,
    )
    batch_size: int = opt(256, "images or texts encoded at once", min=1)
    templates: list[str] = opt(
        DEFAULT_TEMPLATES,
        "zero-shot prompt templates; {} is the class name",
        factory=True,
        rule=rules.templates,
    )
    class_names: dict[str, str] = opt(
        {},
        "how a label reads in a zero-shot prompt (default: "
        "the label, lower case, bracketed notes dropped)",
        factory=True,
    )
    linear_probe: bool = opt(True, "fit a logistic regression on frozen train image features")
    examples: int = opt(3, "retrieval examples drawn in the figures", min=0, max=20)


SMOKE_SAMPLES = 100


@dataclass
class Profile:
    name: str = opt("retclip", "run name: checkpoints go to logs/<name>")
    workdir: str = opt("", "run directory (empty: runs/<name> in the current directory)")
    data_dir: str = opt(
        "",
        "folder holding the converted data/ and lmdb/ (empty: the run directory); a sweep's "
        "variants share one this way",
    )
    hub: HubSection = field(default_factory=HubSection)
    data: DataSection = field(default_factory=DataSection)
    sizing: SizingSection = field(default_factory=SizingSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    # Where the profile was read from; relative paths resolve against its folder.
    source: Path | None = field(default=None, compare=False, repr=False)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def resolve(self, value: str) -> Path:
        try:
            path = Path(value).expanduser()
        except RuntimeError:  # "~someone/..." with no such user: a path that is not found
            path = Path(value)
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def workdir_path(self) -> Path:
        if self.workdir:
            return self.resolve(self.workdir)
        return (Path.cwd() / "runs" / self.name).resolve()

    def data_dir_path(self) -> Path | None:
        """Where data/ and lmdb/ live when not in the run folder (a sweep's shared data)."""
        return self.resolve(self.data_dir) if self.data_dir else None

    def model_spec(self):
        """The towers to build (model.build.ModelSpec) for these settings."""
        from .model.build import ModelSpec

        m = self.model
        return ModelSpec(m.vision, m.text, m.context_length, self.data.image_size)

    def dataset_source(self) -> tuple[str, str]:
        """('local', absolute path) or ('hub', repo id)."""
        value = self.hub.dataset
        looks_local = value.startswith((".", "/", "~")) or not HUB_ID.match(value)
        if looks_local or self.resolve(value).exists():
            return "local", str(self.resolve(value))
        return "hub", value

    def train_samples(self, available: int) -> int:
        if self.sizing.mode == "full":
            return available
        wanted = SMOKE_SAMPLES if self.sizing.mode == "smoke" else self.sizing.samples
        return min(wanted, available)

    def test_samples(self, available: int, train_fraction: float) -> int:
        if self.sizing.mode == "full":
            return available
        if self.sizing.test_samples:
            return min(self.sizing.test_samples, available)
        return min(available, max(1, round(available * train_fraction)))


def train_batch_size(profile: Profile, pairs: int, processes: int = 1) -> tuple[int, str]:
    """(the batch size training uses, a warning or ""). A smoke run's 100 pairs are fewer
    than a full run's batch: it trains at the largest power of two that gives at least two
    steps, so that the smoke run proves the full run's settings. Elsewhere a batch larger
    than the split is the user's to fix (`--check` says so)."""
    batch = profile.train.batch_size
    if profile.sizing.mode != "smoke" or pairs >= 2 * batch * processes:
        return batch, ""
    fitted = 2
    while fitted * 2 * 2 * processes <= pairs:
        fitted *= 2
    fitted = min(fitted, batch)
    if fitted == batch:
        return batch, ""
    return fitted, (
        f"smoke run: {pairs} train pairs, so training uses batches of {fitted} instead of "
        f"train.batch_size = {batch} (the full run keeps {batch})"
    )


def neutral_keys() -> list[tuple[str, str]]:
    """(section, key) of every key that changes how a run goes, never what it produces."""
    return [
        (section, spec.name)
        for section, cls in SECTION_CLASSES.items()
        for spec in dataclasses.fields(cls)
        if spec.metadata.get("neutral")
    ]


SECTION_CLASSES = {
    "hub": HubSection,
    "data": DataSection,
    "sizing": SizingSection,
    "model": ModelSection,
    "train": TrainSection,
    "eval": EvalSection,
}


def file_keys() -> list[tuple[str, str]]:
    """(section, key) of every key that names a file."""
    return [
        (section, spec.name)
        for section, cls in SECTION_CLASSES.items()
        for spec in dataclasses.fields(cls)
        if spec.metadata.get("file")
    ]
