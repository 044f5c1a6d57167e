"""Write the floors of pyproject.toml's dependency ranges as pins (`name==floor`, one a line),
for `make test-min`: the test suite then runs against the lowest versions the ranges allow.

    python scripts/floors.py [--out FILE] [--all]

By default only the pure-Python stack is pinned (transformers, huggingface_hub, datasets,
tokenizers, textual, rich, tomli-w): the compiled ones (torch and torchvision come exact from
constraints.txt, from local disk; numpy, pillow, scikit-learn, matplotlib, pyarrow, lmdb) are
left to the resolver. --all pins those floors too (torch and torchvision never)."""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXACT = {"torch", "torchvision"}  # pinned by constraints.txt, installed from local disk
COMPILED = {"numpy", "pillow", "scikit-learn", "matplotlib", "pyarrow", "lmdb"}
FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(?:,.*)?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def floors(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Each dependency's floor, by canonical name; a dependency without a `>=` floor is an
    error (a range with no floor cannot be tested at its bottom)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    out = {}
    for spec in data["project"]["dependencies"]:
        match = FLOOR.match(spec.split(";")[0])
        if not match:
            raise SystemExit(f"{pyproject}: dependency {spec!r} has no '>=' floor")
        out[canonical(match.group(1))] = match.group(2)
    return out


def pins(found: dict[str, str], compiled: bool = False) -> list[str]:
    left = EXACT if compiled else EXACT | COMPILED
    return [f"{name}=={version}" for name, version in found.items() if name not in left]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="file to write (default: stdout)")
    parser.add_argument("--all", action="store_true", help="pin the compiled packages too")
    args = parser.parse_args(argv)
    text = "\n".join(pins(floors(), args.all)) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
