"""The TOML profile: one file per experiment, typed sections with defaults.

`load` reports every problem at once, each with its key path and line; `save` writes only
what differs from the defaults. Relative paths in a profile are relative to the profile's
own folder, so a profile works from any current directory. The Hugging Face token is never a
profile field: the profile only names where to find it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import profile_values as rules
from .errors import UserError

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
    index_column: str = opt(
        "dataset_index", "CSV column with the row index into the data set split"
    )
    label_column: str = opt("label", "CSV column with the class name (empty: none)")
    text_column: str = opt(
        "prompt", "CSV column with the text (the patient-level text when paired)"
    )
    left_text_column: str = opt("", "paired: CSV column with the left-eye text")
    right_text_column: str = opt("", "paired: CSV column with the right-eye text")
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
    lr: float = opt(3e-5, "peak learning rate", min=0.0)
    weight_decay: float = opt(
        0.001, "AdamW weight decay (not on norms, biases, temperatures)", min=0.0
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
    save_every_steps: int = opt(
        0, "also write epoch_latest.pt every this many steps (0: off)", min=0
    )
    early_stop: str = opt(
        "",
        "stop when this validation figure stops improving (empty: off)",
        choices=("", "val_loss", "val_i2t", "val_t2i", "val_i2t_class"),
    )
    patience: int = opt(3, "epochs without improvement before early stopping", min=1)
    seed: int = opt(0, "seed of initialisation, data order and augmentation", min=0)
    workers: int = opt(2, "data loader worker processes", min=0, neutral=True)
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
        'checkpoint to evaluate (empty: the training\'s latest; "init": '
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


@dataclass
class Problem:
    key: str
    message: str
    line: int | None = None

    def __post_init__(self) -> None:
        # A message may quote a value; a token pasted into the profile must not be shown.
        self.key, self.message = rules.redact(self.key), rules.redact(self.message)

    def format(self, source: Path | None) -> str:
        where = str(source) if source else "profile"
        if self.line:
            where += f":{self.line}"
        return f"{where}: {self.key}: {self.message}"


class ProfileError(UserError):
    def __init__(self, problems: list[Problem], source: Path | None):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(p.format(source) for p in problems))


def _key_line(text: str, section: str | None, key: str) -> int | None:
    """Line number of `key` in `[section]` (or at the top level) of a TOML text."""
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1).strip('"')
            if section is not None and key == "" and current == section:
                return number
            if section is None and current == key:  # a whole [table] that is the problem
                return number
            continue
        if current == section and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
            return number
    return None


def _text_line(text: str, needle: str) -> int | None:
    """Line number of the first line of a TOML text that holds `needle`."""
    return next((n for n, line in enumerate(text.splitlines(), 1) if needle in line), None)


def _type_name(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        float: "a number",
        list: "a list of strings",
        dict: "a table of strings",
    }[kind]


KINDS = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": float,
    "list[str]": list,
    "dict[str, str]": dict,
}


def _check_value(key: str, value: Any, spec: dataclasses.Field) -> str | None:
    kind = KINDS[spec.type] if isinstance(spec.type, str) else spec.type
    if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return f"expected {_type_name(kind)}, got {value!r}"
    if kind is dict and not (
        isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    ):
        return f"expected {_type_name(kind)}, got {value!r}"
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        return f"expected {_type_name(kind)}, got {value!r}"
    if kind is float and not math.isfinite(value):
        return rules.finite(value)
    meta = spec.metadata
    if meta.get("choices") and value not in meta["choices"]:
        return f"expected one of {', '.join(map(repr, meta['choices']))}, got {value!r}"
    if meta.get("min") is not None and value < meta["min"]:
        return f"must be at least {meta['min']}, got {value}"
    if meta.get("max") is not None and value > meta["max"]:
        return f"must be at most {meta['max']}, got {value}"
    return meta["rule"](value) if meta.get("rule") else None


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key.split(".")[-1], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return "unknown key" + hint


def from_dict(
    raw: dict[str, Any],
    source: Path | None = None,
    text: str = "",
    check_files: bool = True,
    cross: bool = True,
) -> Profile:
    """Build a Profile from parsed TOML, collecting every problem before raising.
    `cross` False leaves out the rules between keys (a wizard fills them in over screens)."""
    problems: list[Problem] = []
    flagged = set()  # keys holding a token: their other problems would only repeat it
    for where, token in rules.tokens(raw):
        names = [part for part in where if isinstance(part, str)]
        flagged.add(".".join(names[:2] if names[0] in SECTION_CLASSES else names[:1]))
        table, last = ".".join(names[:-1]) or None, names[-1]
        line = _key_line(text, table, token if last == "<a key>" else last)
        problems.append(
            Problem(rules.dotted(where), rules.TOKEN_MESSAGE, line or _text_line(text, token))
        )
    profile = Profile(source=source)
    top_fields = {f.name: f for f in dataclasses.fields(Profile) if f.name != "source"}
    for key, value in raw.items():
        if key in flagged:
            continue
        if key not in top_fields:
            problems.append(
                Problem(key, _unknown(key, list(top_fields)), _key_line(text, None, key))
            )
        elif key in SECTION_CLASSES:
            if not isinstance(value, dict):
                problems.append(
                    Problem(key, f"expected a [{key}] table", _key_line(text, None, key))
                )
                continue
            section = getattr(profile, key)
            specs = {f.name: f for f in dataclasses.fields(section)}
            for sub, sub_value in value.items():
                path = f"{key}.{sub}"
                line = _key_line(text, key, sub)
                if path in flagged:
                    continue
                if sub not in specs:
                    problems.append(Problem(path, _unknown(sub, list(specs)), line))
                    continue
                error = _check_value(path, sub_value, specs[sub])
                if error:
                    problems.append(Problem(path, error, line))
                else:
                    setattr(section, sub, sub_value)
        else:
            error = _check_value(key, value, top_fields[key])
            if error:
                problems.append(Problem(key, error, _key_line(text, None, key)))
            else:
                setattr(profile, key, value)
    if cross and not flagged:  # a key set aside would read as missing
        problems += cross_checks(profile, text, check_files)
    if problems:
        raise ProfileError(problems, source)
    return profile


def cross_checks(profile: Profile, text: str, check_files: bool) -> list[Problem]:
    problems = []

    def add(section: str, key: str, message: str) -> None:
        problems.append(Problem(f"{section}.{key}", message, _key_line(text, section, key)))

    data = profile.data
    if not data.train_csv:
        add("data", "train_csv", "required: the path of your train prompt CSV")
    if data.eyes == "paired":
        for key in ("left_text_column", "right_text_column"):
            if not getattr(data, key):
                add("data", key, 'required when data.eyes = "paired"')
    if not re.fullmatch(r"[\w.-]+", profile.name):
        problems.append(
            Problem(
                "name", "use letters, digits, '.', '_' or '-' only", _key_line(text, None, "name")
            )
        )
    if check_files:
        for key in ("train_csv", "test_csv"):
            value = getattr(data, key)
            if value and not profile.resolve(value).is_file():
                add("data", key, f"file not found: {profile.resolve(value)}")
        kind, where = profile.dataset_source()
        if kind == "local" and not Path(where).exists():
            add("hub", "dataset", f"not a hub id (owner/name) and no such folder: {where}")
    return problems


def load(path: str | Path, check_files: bool = True) -> Profile:
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"profile not found: {path} (see profiles/ for examples)") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder: give the profile's TOML file") from None
    except PermissionError:
        raise UserError(f"no permission to read the profile {path}") from None
    except UnicodeDecodeError:
        raise UserError(f"profile {path} is not UTF-8 text") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {rules.redact(str(exc))}") from None
    return from_dict(raw, source=path, text=text, check_files=check_files)


def to_dict(profile: Profile, minimal: bool = False, resolved: bool = False) -> dict[str, Any]:
    """The profile as TOML-ready data: only non-defaults when `minimal`; absolute paths when
    `resolved` (every default filled in, for the copy kept in the run directory)."""
    defaults = Profile()
    out: dict[str, Any] = {}
    for spec in dataclasses.fields(Profile):
        if spec.name == "source":
            continue
        value = getattr(profile, spec.name)
        if spec.name in SECTION_CLASSES:
            table = {}
            for sub in dataclasses.fields(value):
                sub_value = getattr(value, sub.name)
                if resolved and sub.metadata.get("file") and sub_value not in ("", "init"):
                    sub_value = str(profile.resolve(sub_value))
                if not minimal or sub_value != getattr(getattr(defaults, spec.name), sub.name):
                    table[sub.name] = sub_value
            if resolved and spec.name == "hub":
                kind, where = profile.dataset_source()
                table["dataset"] = where
            if table:
                out[spec.name] = table
        else:
            if resolved and spec.name == "workdir":
                value = str(profile.workdir_path())
            if not minimal or value != getattr(defaults, spec.name):
                out[spec.name] = value
    return out


def dumps(profile: Profile, minimal: bool = True, resolved: bool = False) -> str:
    import tomli_w

    return tomli_w.dumps(to_dict(profile, minimal=minimal, resolved=resolved))


def save(profile: Profile, path: str | Path) -> None:
    from .atomic import write_text

    write_text(path, dumps(profile, minimal=True))


def fingerprint(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_keys() -> list[tuple[str, str]]:
    """(section, key) of every key that names a file."""
    return [
        (section, spec.name)
        for section, cls in SECTION_CLASSES.items()
        for spec in dataclasses.fields(cls)
        if spec.metadata.get("file")
    ]


def file_identity(path: Path) -> dict[str, Any]:
    """What a (possibly large) file is, wherever it lives: its size and a digest of its
    first and last 64 KiB (a checkpoint's zip index, which changes with any of its entries).
    A moved run folder or project keeps its identities, so nothing reruns."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 16))
        handle.seek(max(0, size - (1 << 16)))
        digest.update(handle.read(1 << 16))
    return {"size": size, "digest": digest.hexdigest()[:16]}


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
