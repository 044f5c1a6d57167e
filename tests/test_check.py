"""--check is a promise: for each thing a run could fail on and the check can know, a
profile that would fail it, and the item that says so (with the key to change)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retclip_pipeline import profile as profiles
from retclip_pipeline.preflight.check import run_checks

from . import realsize
from .conftest import demo_toml, write_profile

TINY_TOKENIZER = Path(profiles.__file__).parent / "model" / "tiny_tokenizer"


def _items(tmp_path, demo_root, **sections) -> dict:
    data = tmp_path / "set"
    if not data.exists():
        shutil.copytree(demo_root, data)
    path = write_profile(tmp_path, demo_toml(data, workdir=str(tmp_path / "run"), **sections))
    return {item.name: item for item in run_checks(profiles.load(path), tmp_path / "run")}


def _small_bert(folder: Path, positions: int = 64, vocab: bool = True, weights: bool = True):
    """A one-layer BERT folder (the tiny vocabulary), quick to build."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=290,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=positions,
    )
    if weights:
        BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    else:
        config.save_pretrained(folder)
    if vocab:
        for name in ("vocab.txt", "tokenizer_config.json"):
            shutil.copy(TINY_TOKENIZER / name, folder / name)
    return folder


def test_the_demo_passes_every_check(tmp_path, demo_root):
    items = _items(tmp_path, demo_root)
    assert all(item.ok for item in items.values()), items
    for name in ("vision tower", "text tower", "tokenizer", "batch size", "training estimate"):
        assert name in items
    assert "disk space" in items and "checkpoints and the export" in items["disk space"].detail


def test_a_batch_larger_than_the_train_split_fails_naming_the_key(tmp_path, demo_root):
    items = _items(
        tmp_path, demo_root, sizing={"mode": "custom", "samples": 10}, train={"batch_size": 64}
    )
    batch = items["batch size"]
    assert not batch.ok and "lower train.batch_size to at most" in batch.detail


def test_the_batch_is_checked_against_the_pairs_the_sample_will_hold(tmp_path, demo_root):
    """10 of the 59 train images, chosen as the conversion chooses them, hold 10 pairs (the
    set's 65 rows in proportion would say 11): a batch of 11 fails the check, as it would
    fail training; a batch of 10 passes, and trains."""
    from retclip_pipeline.runner import run

    sizing = {"mode": "custom", "samples": 10}
    items = _items(tmp_path, demo_root, sizing=sizing, train={"batch_size": 11})
    batch = items["batch size"]
    assert not batch.ok and "hold 10 pairs" in batch.detail and "at most 10" in batch.detail
    items = _items(tmp_path, demo_root, sizing=sizing, train={"batch_size": 10, "epochs": 1})
    assert all(item.ok for item in items.values()), items
    profile = profiles.load(tmp_path / "profile.toml")
    summaries = run(profile, profile.workdir_path(), lambda event: None)
    assert summaries["train"]["epochs"] == 1


def test_a_smoke_run_lowers_the_batch_with_a_warning(tmp_path, demo_root):
    items = _items(tmp_path, demo_root, sizing={"mode": "smoke"}, train={"batch_size": 128})
    batch = items["batch size"]
    assert batch.ok and batch.warning and "instead of train.batch_size = 128" in batch.detail
    assert "at batch 32" in items["training estimate"].detail  # 65 pairs: two steps of 32


@pytest.mark.parametrize("on_bad_row", ["error", "skip"])
def test_csv_indices_beyond_the_split_fail_or_warn(tmp_path, demo_root, on_bad_row):
    """The data set's row counts against the CSV: an index past the split stops the run
    (the item fails, naming the line) or is left out (the item warns: a CSV pointing at
    the wrong split is read, not a typo)."""
    data = tmp_path / "set"
    shutil.copytree(demo_root, data)
    with open(data / "prompts_test.csv", "a", encoding="utf-8") as handle:
        handle.write('99999,Glaucoma,"A fundus with glaucoma."\n')
    item = _items(tmp_path, demo_root, data={"on_bad_row": on_bad_row})["data set test"]
    assert "99999 is outside the split" in item.detail, item
    if on_bad_row == "error":
        assert not item.ok and 'data.on_bad_row = "skip"' in item.detail
    else:
        assert item.ok and item.warning and "1 CSV rows point outside it" in item.detail
        assert "in range" not in item.detail


def test_accumulation_beyond_the_batches_fails(tmp_path, demo_root):
    items = _items(tmp_path, demo_root, train={"batch_size": 16, "accumulation": 8})
    assert not items["batch size"].ok and "train.accumulation" in items["batch size"].detail


def test_a_tower_folder_without_weights_fails(tmp_path, demo_root):
    folder = _small_bert(tmp_path / "bert", weights=False)
    items = _items(tmp_path, demo_root, model={"text": str(folder)})
    text = items["text tower"]
    assert not text.ok and "holds no weights" in text.detail and "model.text" in text.detail
    assert not items["training estimate"].ok


def test_a_text_model_as_the_image_tower_fails(tmp_path, demo_root):
    folder = _small_bert(tmp_path / "bert")
    items = _items(tmp_path, demo_root, model={"vision": str(folder)})
    vision = items["vision tower"]
    assert not vision.ok and "use a CLIP or Chinese-CLIP one" in vision.detail


def test_an_uncached_hub_tower_offline_names_the_fetch_command(tmp_path, demo_root):
    items = _items(tmp_path, demo_root, model={"text": "pubmedbert"})
    text = items["text tower"]
    assert not text.ok
    assert (
        "hf download microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext" in text.detail
    )
    assert not items["tokenizer"].ok


def test_an_unreachable_hub_is_said_once_and_the_cache_read(tmp_path, demo_root, monkeypatch):
    """No network (connections refused) without HF_HUB_OFFLINE: the hub item says why, the
    uncached tower fails from the cache at once, and the client is back online after."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    items = _items(tmp_path, demo_root, model={"text": "pubmedbert"})
    hub = items["hub"]
    assert hub.ok and hub.warning
    assert hub.detail.startswith("hub not reachable (ConnectError: ")
    assert hub.detail.endswith("using cached files only")
    assert not items["text tower"].ok and not items["tokenizer"].ok
    assert items["token"].detail == "not needed for a local data set"
    assert constants.HF_HUB_OFFLINE is False


def test_the_estimate_offline_reads_the_cache_and_says_why(tmp_path, demo_root, monkeypatch):
    from huggingface_hub import constants

    from retclip_pipeline.errors import UserError
    from retclip_pipeline.preflight.check import estimate_lines

    data = tmp_path / "set"
    shutil.copytree(demo_root, data)
    path = write_profile(tmp_path, demo_toml(data, workdir=str(tmp_path / "run")))
    profile = profiles.load(path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    lines, fits = estimate_lines(profile)  # tiny towers: nothing on the hub, nothing asked
    assert fits and not any("hub not reachable" in line for line in lines)
    profile.model.text = "pubmedbert"  # on the hub, not cached
    with pytest.raises(UserError, match=r"^hub not reachable \(ConnectError: .*cannot load"):
        estimate_lines(profile)
    assert constants.HF_HUB_OFFLINE is False


def test_a_tower_without_a_tokenizer_fails(tmp_path, demo_root):
    folder = _small_bert(tmp_path / "bert", vocab=False)
    items = _items(tmp_path, demo_root, model={"text": str(folder)})
    assert items["text tower"].ok and not items["tokenizer"].ok
    assert "no vocabulary" in items["tokenizer"].detail


def test_a_tokenizer_larger_than_the_embeddings_fails(tmp_path, demo_root):
    folder = _small_bert(tmp_path / "bert")
    realsize.build_tokenizer(tmp_path / "big", realsize.english_vocab())
    shutil.copy(tmp_path / "big" / "vocab.txt", folder / "vocab.txt")
    tokenizer = _items(tmp_path, demo_root, model={"text": str(folder)})["tokenizer"]
    assert not tokenizer.ok and "30,522 tokens but the tower embeds 290" in tokenizer.detail


def test_a_context_longer_than_the_positions_fails(tmp_path, demo_root):
    folder = _small_bert(tmp_path / "bert", positions=64)
    items = _items(tmp_path, demo_root, model={"text": str(folder), "context_length": 100})
    context = items["context length"]
    assert not context.ok and "model.context_length = 100" in context.detail
    assert "at most 64" in context.detail


def test_too_little_disk_for_the_checkpoints_fails(tmp_path, demo_root, monkeypatch):
    from retclip_pipeline.preflight import check

    real = shutil.disk_usage
    monkeypatch.setattr(
        check.shutil, "disk_usage", lambda path: real(path)._replace(free=3_000_000)
    )
    disk = _items(tmp_path, demo_root)["disk space"]
    assert not disk.ok and "free some space" in disk.detail and "checkpoints" in disk.detail


def test_memory_beyond_the_machine_fails(tmp_path, demo_root, monkeypatch):
    from retclip_pipeline.preflight import estimate

    monkeypatch.setattr(estimate, "available_ram", lambda: 0.5 * 2**30)
    item = _items(tmp_path, demo_root)["training estimate"]
    assert not item.ok and "DOES NOT FIT: lower train.batch_size" in item.detail
    assert "set train.grad_checkpointing = true" in item.detail
    # what the profile does already is not advised again (full.toml checkpoints)
    done = _items(tmp_path, demo_root, train={"grad_checkpointing": True})["training estimate"]
    assert not done.ok and "DOES NOT FIT: lower train.batch_size" in done.detail
    assert "grad_checkpointing" not in done.detail and "model.freeze" in done.detail


@pytest.mark.parametrize("vocab,warned", [("chinese", True), ("english", False)])
def test_prompt_fit_warns_when_english_prompts_meet_a_chinese_vocabulary(
    tmp_path, demo_root, vocab, warned
):
    words = realsize.chinese_vocab() if vocab == "chinese" else realsize.english_vocab()
    folder = realsize.build_tokenizer(tmp_path / "tok", words)
    fit = _items(tmp_path, demo_root, model={"text": str(folder)})["prompt fit"]
    assert fit.ok and ("unknown tokens" in fit.detail)
    assert ("Chinese vocabulary" in fit.detail) is warned
    if warned:
        assert '"bert-base-uncased", "pubmedbert", "biobert"' in fit.detail


def test_an_unknown_token_rate_is_reported(tmp_path, demo_root):
    folder = realsize.build_tokenizer(tmp_path / "tok", [*realsize.SPECIAL, "a", "the"])
    fit = _items(tmp_path, demo_root, model={"text": str(folder)})["prompt fit"]
    assert fit.warning and "of the prompts' tokens are unknown" in fit.detail


def test_one_check_type_and_one_console_renderer():
    from retclip_pipeline.checks import SMOKE_MARKS, Check, passed, render, render_line, summary
    from retclip_pipeline.preflight.inspect import Report

    good, warned = Check.of("profile", True, "p.toml"), Check.of("batch size", True, "32", True)
    bad = Check.of("train CSV", False, "t.csv: no rows")
    assert (good.state, warned.state, bad.state) == ("ok", "warn", "fail")
    assert warned.ok and warned.warning and not bad.ok and not good.warning
    assert render([good, warned, bad]).splitlines() == [
        "[ok  ] profile: p.toml",
        "[warn] batch size: 32",
        "[FAIL] train CSV: t.csv: no rows",
    ]
    assert render_line(good, SMOKE_MARKS) == "[pass] profile: p.toml"
    assert render_line(Check("", "ok", "a line alone")) == "[ok  ] a line alone"
    assert summary([good, warned, bad]) == "2 of 3 checks passed (1 with warnings)"
    assert passed([good, warned]) and not passed([good, bad])
    with pytest.raises(ValueError, match="state"):
        Check("x", "passed", "")
    report = Report([good, warned])
    report.add("sizing full")
    assert report.ok and report.lines == ["profile: p.toml", "sizing full"]
    assert report.verdict() == "ready to convert; batch size: 32"
    report.fail("train: broken")
    assert not report.ok and report.problems == ["train: broken"]
    assert report.verdict() == "train: broken"


def test_skipped_rows_are_named_by_their_line(tmp_path, demo_root):
    data = tmp_path / "set"
    shutil.copytree(demo_root, data)
    csv = data / "prompts_train.csv"
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = "1_4,Glaucoma,a pale disc\n"
    lines[5] = '2,Glaucoma,"a pale" disc\n'
    csv.write_text("".join(lines), encoding="utf-8")
    detail = _items(tmp_path, demo_root, data={"on_bad_row": "skip"})["train CSV"].detail
    assert "2 bad row(s) left out (line 4: dataset_index '1_4' is not an integer; line 6: " in (
        detail
    )


def test_the_odir_layout_is_worded_as_patients_and_files(tmp_path):
    """A paired CSV counts patients; a file-name join says its files were found (not "CSV
    indices in range"); an estimate under a second never reads "about 0.0 s"."""
    from .test_odir import ODIR, odir_toml

    profile = profiles.load(write_profile(tmp_path, odir_toml(ODIR, workdir=str(tmp_path / "r"))))
    items = {item.name: item for item in run_checks(profile, tmp_path / "r", "h100")}
    assert all(item.ok for item in items.values()), items
    assert items["train CSV"].detail.endswith(": 8 rows, 8 distinct patients")
    found = items["data set train"].detail
    assert "the image files the CSV names found, each once (8 rows usable)" in found
    assert "indices" not in found and "[train]" not in found
    estimate = items["training estimate"].detail
    assert "time per epoch on H100 80GB SXM: under 1 s" in estimate, estimate
    assert "0.0 s" not in estimate
    from retclip_pipeline.preflight.costs import sizing_lines

    lines = sizing_lines(profile)  # the plan's cost lines (--dry-run, the wizard's Sizing)
    assert lines[0] == "train: 8 of 8 patients, test: 4 of 4 patients", lines
    assert "conversion: under 1 s on " in lines[2], lines


def test_a_file_named_twice_fails_the_check_naming_both(tmp_path):
    from .test_odir import ODIR, odir_toml

    root = tmp_path / "odir"
    shutil.copytree(ODIR, root)
    shutil.copy(root / "Training Images/4_right.jpg", root / "3_right.jpg")
    profile = profiles.load(write_profile(tmp_path, odir_toml(root, workdir=str(tmp_path / "r"))))
    items = {item.name: item for item in run_checks(profile, tmp_path / "r")}
    train = items["data set train"]
    assert not train.ok and "(3_right.jpg and Training Images/3_right.jpg)" in train.detail
    assert items["data set test"].ok


def test_check_names_a_missing_model_init(demo_profile, capsys):
    """--check passed a model.init that names no file; the run failed only after the
    conversion, naming no key."""
    from retclip_pipeline.__main__ import main

    text = demo_profile.read_text().replace("[model]\n", '[model]\ninit = "nope.pt"\n', 1)
    demo_profile.write_text(text)
    assert main(["--profile", str(demo_profile), "--check"]) == 2
    out = capsys.readouterr().out
    assert "[FAIL] model.init: " in out and "nope.pt is not found" in out


def test_the_smoke_checklist_reads_damaged_files_as_failed_items(tmp_path):
    """A torn metrics line, results that are JSON but no object, a converted file not UTF-8
    or a stage summary of another shape were tracebacks from the checklist (the end of a
    smoke run, promote, the wizard)."""
    import json

    from retclip_pipeline.layout import RunLayout
    from retclip_pipeline.preflight.smoke import checklist

    layout = RunLayout(tmp_path / "run", "retclip")
    layout.data.mkdir(parents=True)
    layout.imgs_tsv("train").write_bytes(b"0\t\xff\t\n1\tx\tx\n")
    layout.training.mkdir(parents=True)
    layout.metrics.write_bytes(b'{"epoch": 1, "step": 4}\n{"epoch": 2, "st')
    layout.evaluation.mkdir(parents=True)
    layout.results.write_text("[]")
    stage = {"status": "done", "fingerprint": "x", "summary": [1, 2]}
    layout.state.write_text(json.dumps({"stages": {"lmdb": stage, "convert": stage}}))
    items = {item.name: item for item in checklist(layout.root, layout)}
    assert items["data readable"].ok and "2 train images" in items["data readable"].detail
    assert items["LMDB keys match"].ok
    assert items["one optimizer step"].ok and "4 steps" in items["one optimizer step"].detail
    assert not items["evaluation produced"].ok


def test_a_run_folder_inside_the_data_set_fails_as_the_run_would(tmp_path, demo_root):
    data = tmp_path / "set"
    shutil.copytree(demo_root, data)
    path = write_profile(tmp_path, demo_toml(data, workdir=str(data / "runs" / "demo")))
    items = {item.name: item for item in run_checks(profiles.load(path), data / "runs" / "demo")}
    assert not items["work directory"].ok
    assert "inside the data set folder" in items["work directory"].detail
    assert "choose a workdir outside it" in items["work directory"].detail
