"""The core never imports Textual, and importing it (or printing --help) pulls in no heavy
library, so the CLI and the TUI's first screen appear at once."""

import subprocess
import sys

HEAVY = ("textual", "torch", "transformers", "datasets", "lmdb")


def test_core_imports_no_textual_and_nothing_heavy():
    code = (
        "import sys, pkgutil, importlib, retclip_pipeline\n"
        "for m in pkgutil.walk_packages(retclip_pipeline.__path__, 'retclip_pipeline.'):\n"
        "    if m.name != 'retclip_pipeline.__main__': importlib.import_module(m.name)\n"
        f"print(sorted(n for n in {HEAVY!r} if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_is_fast_and_light():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['retclip', '--help']\n"
        "try: runpy.run_module('retclip_pipeline', run_name='__main__')\n"
        "except SystemExit: pass\n"
        f"print('LOADED', sorted(n for n in {HEAVY!r} if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--profile" in out.stdout
    assert "LOADED []" in out.stdout
