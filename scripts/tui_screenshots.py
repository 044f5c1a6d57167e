"""The README's screenshots of retclip-tui, as SVG from Textual's own screenshot.

    python scripts/tui_screenshots.py [--out docs/screens]

Runs the small demo headless in a temporary folder (tiny model, one epoch), then opens each
main screen on it at 80x24 (the evaluation at 100x40) and saves what it shows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


SHOTS = [  # (file, step, size)
    ("start", "start", (80, 24)),
    ("token", "token", (80, 24)),
    ("data", "data", (80, 24)),
    ("sizing", "sizing", (80, 24)),
    ("prepare", "prepare", (80, 24)),
    ("train", "train", (100, 40)),
    ("evaluate", "evaluate", (100, 40)),
    ("save", "save", (80, 24)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="retclip-shots-"))
    os.environ["HF_HOME"] = str(home / "hf")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from retclip_pipeline import profile as profiles
    from retclip_pipeline.data import demo
    from retclip_pipeline.runner import run

    demo.write_single_eye(home / "seeds" / "demo", per_class={"train": 8, "test": 4})
    (home / "profiles").mkdir()
    path = home / "profiles" / "demo.toml"
    path.write_text(demo.tiny_profile("demo", epochs=3), encoding="utf-8")
    os.chdir(home)
    run(profiles.load(path), home / "runs" / "demo", lambda event: None)

    from retclip_tui.app import RetclipApp

    async def shoot(name: str, step: str, size: tuple[int, int]) -> None:
        app = RetclipApp(profile=path)
        async with app.run_test(size=size) as pilot:
            if step != "start":
                app.goto(step)
            await pilot.pause(1.0)
            app.save_screenshot(f"{name}.svg", path=str(out))

    for name, step, size in SHOTS:
        asyncio.run(shoot(name, step, size))
        print(out / f"{name}.svg")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
