"""The conversion report's near-duplicate check on synthetic hashes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retclip_pipeline.data import report as convert_report
from retclip_pipeline.data.conversion import SplitResult
from retclip_pipeline.data.prompts import PromptTable

from .conftest import PATIENCE_S, ROOT


def _split(name: str, words: np.ndarray, eyes: int = 1) -> SplitResult:
    result = SplitResult(name, PromptTable(Path(f"{name}.csv"), [], 0), [])
    for i in range(len(words) // eyes):
        hexes = ["".join(f"{w:016x}" for w in words[i * eyes + e]) for e in range(eyes)]
        result.images[i * 2] = {"label": "ab"[i % 2], "phash": hexes}
    return result


def _reference(train: SplitResult, test: SplitResult, bits: int) -> dict[int, tuple[int, int]]:
    """Every test hash against every train hash at once: the nearest, first on ties."""
    train_ids, train_words = convert_report._hashes(train)
    test_ids, test_words = convert_report._hashes(test)
    bits_set = np.unpackbits((test_words[:, None, :] ^ train_words[None]).view(np.uint8), axis=-1)
    distance = bits_set.sum(axis=-1)
    matches: dict[int, tuple[int, int]] = {}
    for row, column in enumerate(distance.argmin(axis=1)):
        found = (int(train_ids[column]), int(distance[row, column]))
        test_id = int(test_ids[row])
        if found[1] <= bits and (test_id not in matches or found[1] < matches[test_id][1]):
            matches[test_id] = found
    return matches


def test_blocks_over_train_and_test_find_what_one_whole_matrix_finds(monkeypatch):
    monkeypatch.setattr(convert_report, "TEST_BLOCK", 3)
    monkeypatch.setattr(convert_report, "TRAIN_BLOCK", 5)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**64, (6, 4), dtype=np.uint64)  # few originals: many ties
    for eyes in (1, 2):
        words = base[rng.integers(0, 6, 60)]
        flips = np.uint64(1) << rng.integers(0, 64, words.shape).astype(np.uint64)
        words = words ^ flips * (rng.random(words.shape) < 0.3)
        train, test = _split("train", words[:44], eyes), _split("test", words[44:], eyes)
        found = convert_report.near_duplicates(train, test, bits=2)
        expected = _reference(train, test, 2)
        assert found["test_images_with_train_match"] == len(expected) > 0
        assert (
            found["examples"]
            == [{"test": t, "train": m, "distance": d} for t, (m, d) in sorted(expected.items())][
                : convert_report.EXAMPLES
            ]
        )


_MEASURE = """
import sys
from pathlib import Path
import numpy as np
from retclip_pipeline.data import report as convert_report
from retclip_pipeline.data.conversion import SplitResult
from retclip_pipeline.data.prompts import PromptTable

def split(name, count, rng):
    text = rng.bytes(32 * count).hex()
    result = SplitResult(name, PromptTable(Path("p.csv"), [], 0), [])
    result.images = {i: {"label": None, "phash": [text[64 * i : 64 * i + 64]]} for i in range(count)}
    return result

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024

rng = np.random.default_rng(0)
train, test = split("train", 200_000, rng), split("test", 256, rng)
held = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
convert_report.near_duplicates(train, test, 12)
print(status("VmHWM") - held)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc needed")
def test_near_duplicate_check_memory_does_not_grow_with_the_train_split():
    # Blocks over the test split alone once took 128 x 200,000 x 32 bytes (820 MB) at a time.
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=PATIENCE_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) < 200  # MiB over what the splits hold
