"""Shared fixtures. The Hugging Face caches point into a temporary folder before anything
imports `datasets`, and no test touches the network."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_CACHE = Path(tempfile.mkdtemp(prefix="retclip-hf-"))
os.environ["HF_HOME"] = str(_CACHE)
os.environ["HF_DATASETS_CACHE"] = str(_CACHE / "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("NO_COLOR", None)
os.environ.pop("HF_TOKEN", None)
# huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, when first imported: import it
# now, so that a test's setenv (a stand-in hub's address) never becomes every later test's.
import huggingface_hub.constants  # noqa: E402, F401

ROOT = Path(__file__).resolve().parent.parent
# How long a test waits for a process or a screen: a guard against a hang, never a timing;
# a loaded CI machine ran the demo profile 20 times slower than an idle one.
PATIENCE_S = 3600
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A small single-eye demo set: 6 train and 3 test images a class."""
    from retclip_pipeline.data import demo

    root = tmp_path_factory.mktemp("demo")
    demo.write_single_eye(root, per_class={"train": 6, "test": 3})
    return root


@pytest.fixture(scope="session")
def paired_root(tmp_path_factory) -> Path:
    from retclip_pipeline.data import demo

    root = tmp_path_factory.mktemp("paired")
    demo.write_paired(root, patients={"train": 24, "test": 8})
    return root


PAIRED_DATA = {
    "eyes": "paired",
    "index_column": "patient_id",
    "label_column": "",
    "text_column": "prompt_patient",
    "left_text_column": "prompt_left",
    "right_text_column": "prompt_right",
}


def demo_toml(
    root: Path,
    *,
    workdir: str = "run",
    name: str = "t",
    data: dict | None = None,
    model: dict | None = None,
    train: dict | None = None,
    sizing: dict | None = None,
) -> str:
    """A profile over a demo set in `root`: tiny model, 32 px, a short CPU training."""
    import tomli_w

    profile = {
        "name": name,
        "workdir": workdir,
        "hub": {"dataset": str(root)},
        "data": {
            "train_csv": f"{root}/prompts_train.csv",
            "test_csv": f"{root}/prompts_test.csv",
            "image_size": 32,
        }
        | (data or {}),
        "model": {"vision": "tiny", "text": "tiny", "context_length": 24} | (model or {}),
        "train": {"batch_size": 16, "epochs": 1, "workers": 0} | (train or {}),
    }
    if sizing:
        profile["sizing"] = sizing
    return tomli_w.dumps(profile)


def write_profile(folder: Path, text: str, name: str = "profile.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def demo_profile(tmp_path, demo_root) -> Path:
    """A profile over a private copy of the small demo set (tests may damage the copy)."""
    data = tmp_path / "set"
    shutil.copytree(demo_root, data)
    return write_profile(tmp_path, demo_toml(data))


def run_cli(
    *args: str, cwd: Path | None = None, timeout: int = PATIENCE_S, env: dict | None = None
):
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "retclip_pipeline", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy() if env is None else env,
    )


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory, demo_root) -> Path:
    """The small demo converted and built to LMDB once (read-only for tests)."""
    from retclip_pipeline import profile as profiles
    from retclip_pipeline.runner import run

    folder = tmp_path_factory.mktemp("built")
    path = write_profile(folder, demo_toml(demo_root))
    run(profiles.load(path), folder / "run", lambda event: None, selected=["convert", "lmdb"])
    return folder / "run"


@pytest.fixture(scope="session")
def finished_demo(tmp_path_factory, demo_root) -> Path:
    """The small demo run through every stage (one epoch): an export and an evaluation,
    made once (read-only for tests: copy it to change it)."""
    from retclip_pipeline import profile as profiles
    from retclip_pipeline.runner import run

    folder = tmp_path_factory.mktemp("finished")
    profile = profiles.load(write_profile(folder, demo_toml(demo_root)))
    run(profile, profile.workdir_path(), lambda event: None)
    return profile.workdir_path()


@pytest.fixture(scope="session")
def real_towers(request) -> dict[str, Path]:
    """Real-size towers with random weights (ViT-B/16; BERT-base with a Chinese-style
    vocabulary), built once and kept in pytest's cache folder across runs (about 0.7 GB)."""
    from . import realsize

    folder = request.config.cache.mkdir("retclip-real-towers-v1")
    builders = {
        "vision": ("vit-b-16", realsize.build_vision),
        "text": ("bert-base-zh", lambda path: realsize.build_text(path, realsize.chinese_vocab())),
    }
    towers = {}
    for key, (name, build) in builders.items():
        towers[key] = folder / name
        if not towers[key].is_dir():  # built aside, then renamed: a killed build is redone
            partial = folder / f".{name}-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            build(partial)
            os.replace(partial, towers[key])
    return towers


@pytest.fixture(scope="session")
def real_data(tmp_path_factory) -> dict[str, Path]:
    """The real prompt CSVs' shape and a data set in the hub set's layout."""
    from . import realsize

    root = tmp_path_factory.mktemp("realdata")
    csvs = realsize.write_prompt_csvs(root / "prompts")
    return {"set": realsize.write_hub_layout_set(root / "fundus"), **csvs}


def shipped_profile(
    name: str, folder: Path, towers: dict[str, Path], data: dict[str, Path], **extra
) -> Path:
    """profiles/<name>.toml as shipped, with the hub set, the CSVs and the towers replaced by
    local stand-ins and the run folder moved into `folder`; `extra` sets more keys
    ("train.epochs": 1). Every other line of the shipped file is kept."""
    import tomllib

    import tomli_w

    data_section = {
        "train_csv": str(data["train"]),
        "test_csv": str(data["test"]),
    }
    profile = tomllib.loads((ROOT / "profiles" / f"{name}.toml").read_text(encoding="utf-8"))
    profile["workdir"] = str(folder / "run")
    profile.setdefault("hub", {})["dataset"] = str(data["set"])
    profile.setdefault("data", {}).update(data_section)
    profile.setdefault("model", {}).update(
        {"vision": str(towers["vision"]), "text": str(towers["text"])}
    )
    for dotted, value in extra.items():
        section, key = dotted.split(".")
        profile.setdefault(section, {})[key] = value
    return write_profile(folder, tomli_w.dumps(profile), f"{name}.toml")


def pytest_collection_modifyitems(items) -> None:
    """Snapshot tests (snap_compare's, and the screen text ones) get the snapshot marker:
    they hold at constraints.txt's Textual release only, so `make test-min` leaves them out."""
    for item in items:
        if "snap_compare" in getattr(item, "fixturenames", ()) or item.get_closest_marker(
            "snapshot"
        ):
            item.add_marker(pytest.mark.snapshot)
