"""The core never imports Textual. The modules the CLI and a TUI's first screen need pull in
no heavy library, so both start at once; only model code imports torch, when it is used."""

import ast
import subprocess
import sys

HEAVY = ("textual", "torch", "transformers", "datasets", "lmdb")
# Modules that exist to run models: they may import torch at the top.
MODEL_CODE = (
    "retclip_pipeline.model.retclip",
    "retclip_pipeline.model.weights",
    "retclip_pipeline.model.export",
    "retclip_pipeline.model.loss",
    "retclip_pipeline.training.data",
    "retclip_pipeline.training.optim",
    "retclip_pipeline.training.checkpoint",
    "retclip_pipeline.training.distributed",
    "retclip_pipeline.evaluation.features",
    "retclip_pipeline.evaluation.metrics",
)


def _loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport sys\nprint(sorted(n for n in {HEAVY!r} if n in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_no_module_of_the_core_imports_textual():
    code = (
        "import pkgutil, importlib, retclip_pipeline\n"
        "for m in pkgutil.walk_packages(retclip_pipeline.__path__, 'retclip_pipeline.'):\n"
        "    if m.name != 'retclip_pipeline.__main__': importlib.import_module(m.name)\n"
    )
    assert "textual" not in _loaded_after(code)


def test_core_modules_outside_model_code_import_nothing_heavy():
    code = (
        "import pkgutil, importlib, retclip_pipeline\n"
        "for m in pkgutil.walk_packages(retclip_pipeline.__path__, 'retclip_pipeline.'):\n"
        f"    if m.name != 'retclip_pipeline.__main__' and m.name not in {MODEL_CODE!r}:\n"
        "        importlib.import_module(m.name)\n"
    )
    assert _loaded_after(code) == []


def test_help_is_fast_and_light():
    code = (
        "import sys, runpy, io, contextlib\n"
        "sys.argv = ['retclip', '--help']\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try: runpy.run_module('retclip_pipeline', run_name='__main__')\n"
        "    except SystemExit: pass\n"
        "assert '--profile' in out.getvalue()\n"
    )
    assert _loaded_after(code) == []
