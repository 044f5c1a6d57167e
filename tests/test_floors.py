"""scripts/floors.py: every dependency in pyproject.toml has a floor, and `make test-min`
pins the floors (torch and torchvision come exact from constraints.txt instead)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT


def test_floors_pins_each_floor_but_the_exact_torch(tmp_path):
    out = tmp_path / "floors.txt"
    done = subprocess.run(
        [sys.executable, "scripts/floors.py", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    pins = dict(line.split("==") for line in out.read_text().splitlines())
    assert pins["transformers"].startswith("5.") and pins["huggingface-hub"] == "1.5", pins
    assert {"datasets", "tokenizers", "textual", "rich", "tomli-w"} <= set(pins), pins
    assert not {"torch", "torchvision", "numpy", "pillow"} & set(pins), pins
    every = subprocess.run(
        [sys.executable, "scripts/floors.py", "--all"], cwd=ROOT, capture_output=True, text=True
    )
    everything = dict(line.split("==") for line in every.stdout.splitlines())
    assert {"numpy", "pillow", "scikit-learn", "matplotlib", "pyarrow", "lmdb"} <= set(everything)
    assert "torch" not in everything and "torchvision" not in everything


def test_a_dependency_without_a_floor_is_refused(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import floors
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[project]\ndependencies = ["numpy>=1.23.2", "rich"]\n')
    with pytest.raises(SystemExit, match="'rich' has no '>=' floor"):
        floors.floors(toml)
