"""retclip_pipeline: the headless RET-CLIP pipeline (convert, LMDB, train, evaluate).

A profile (profile.py) goes to the runner (runner.py), which runs the stages (stages/) in
order into one run folder (layout.py) and reports through one event stream (events.py).

The code map:
  profile.py profile_schema.py profile_values.py   the TOML profile: keys, checks, load/save
  profile_edit.py toml_keep.py   keys set from text; a save that keeps the file's comments
  layout.py        every path of a run folder (RunLayout)
  runner.py stage.py state.py fingerprint.py events.py console.py lock.py ownership.py
  atomic.py errors.py units.py quiet.py            the engine: plan, resume, records, output
  watch.py         runs as other processes see them (the wizard starts, follows, stops runs)
  api.py           a trained run as a Python object (encode, classify)
  stages/          the stage definitions (convert, lmdb, train, evaluate): only the runner
                   and the command line import them
  data/            prompt CSVs, sampling, image conversion, LMDB files, the demo data
  hub/             the Hugging Face Hub: token, splits, parquet shards, retries
  model/           RET-CLIP: towers, heads, tokenizer, weights, export, loss (no pipeline)
  training/        the trainer: device, data, optimiser, checkpoints, OOM retry, torchrun
  evaluation/      features, retrieval and zero-shot metrics, figures, the report
  preflight/       before a run: --check, estimates, costs, the smoke checklist
  cli/             argparse subcommands: run (default), compare, embed, query, token, promote

This package never imports Textual; heavy libraries (torch, transformers, datasets) are
imported inside the functions that need them so that the CLI starts at once.
"""

__version__ = "0.1.0"
