"""Seconds from the interpreter's start to the wizard's first screen painted (headless, 80x24),
and whether torch, transformers or datasets were imported by then, or once the first screen's
workers (the plan line) are done (they must not be).

    python bench/tui_bench.py
"""

import sys
import time
from pathlib import Path

t0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's packages
import asyncio  # noqa: E402

from retclip_tui.app import RetclipApp  # noqa: E402

t1 = time.perf_counter()


async def main():
    app = RetclipApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        t2 = time.perf_counter()
        print(
            f"import {t1 - t0:.2f} s, first screen painted {t2 - t0:.2f} s after start; "
            f"heavy: {heavy()}"
        )
        await app.workers.wait_for_complete()
        await pilot.pause()
        print(f"heavy once the first screen's workers are done: {heavy()}")


def heavy() -> list[str]:
    return [m for m in ("torch", "transformers", "datasets") if m in sys.modules]


asyncio.run(main())
