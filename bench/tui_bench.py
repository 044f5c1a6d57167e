"""Seconds from the interpreter's start to the wizard's first screen painted (headless, 80x24),
and whether torch, transformers or datasets were imported by then (they must not be).

    python bench/tui_bench.py
"""

import sys
import time

t0 = time.perf_counter()
import asyncio  # noqa: E402

from retclip_tui.app import RetclipApp  # noqa: E402

t1 = time.perf_counter()


async def main():
    app = RetclipApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        t2 = time.perf_counter()
        print(
            f"import {t1 - t0:.2f} s, first screen painted {t2 - t0:.2f} s after start; heavy: {[m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]}"
        )


asyncio.run(main())
