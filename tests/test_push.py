"""`push`: a finished run to a model repo of the stand-in hub (tests/hubstand.py) through the
real huggingface_hub client: one commit, the export, the figures and the card; the card's
loading code run against what was pushed; the errors a user can cause, one line each; and
the token nowhere but in the Authorization header."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from retclip_pipeline.cli import main
from retclip_pipeline.layout import RunLayout

from . import hubstand
from .conftest import ROOT, run_cli

REPO = "tester/retclip-demo"
DATASET = "org/fundus-demo"


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    state = hubstand.Hub()
    url, server = hubstand.serve(state)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    state.url = url
    yield state
    server.shutdown()


@pytest.fixture
def finished(finished_demo, tmp_path) -> Path:
    """A copy of the finished demo run, its data set named as a hub id (as a real run's)."""
    run = tmp_path / "run"
    shutil.copytree(finished_demo, run, ignore=shutil.ignore_patterns("lmdb"))
    layout = RunLayout.of_folder(run)
    profile = tomllib.loads(layout.resolved_profile.read_text(encoding="utf-8"))
    profile["hub"]["dataset"] = DATASET
    layout.resolved_profile.write_text(tomli_w.dumps(profile), encoding="utf-8")
    return run


def _env(hub, token: str | None) -> dict:
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0")
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    return env


def _expected_files(run: Path) -> dict[str, bytes]:
    layout = RunLayout.of_folder(run)
    files = {
        p.relative_to(layout.export).as_posix(): p.read_bytes()
        for p in layout.export.rglob("*")
        if p.is_file()
    }
    files |= {f"figures/{p.name}": p.read_bytes() for p in layout.evaluation.glob("*.png")}
    return files


def test_push_is_one_commit_of_the_export_figures_and_card(hub, finished):
    result = run_cli(
        "push", "--run", str(finished), "--repo", REPO, "--private", env=_env(hub, hubstand.GOOD)
    )
    assert result.returncode == 0, result.stderr
    assert len(hub.commits) == 1 and hub.count("POST", "/commit/") == 1
    assert hub.created == [
        {"name": "retclip-demo", "organization": "tester", "visibility": "private"}
    ]
    commit = hub.commits[0]
    assert commit.repo_id == REPO and commit.token == hubstand.GOOD

    expected = _expected_files(finished)
    assert {
        "vision/config.json",
        "text/tokenizer.json",
        "heads.pt",
        "retclip_state_dict.pt",
    } <= set(expected)
    assert any(name.startswith("figures/confusion_") for name in expected)
    assert set(commit.files) == set(expected) | {"README.md", "evaluation_results.json"}
    for name, data in expected.items():
        assert commit.files[name] == data, name

    # the card: front matter through huggingface_hub, the data set, sizes, metrics, citation
    from huggingface_hub import ModelCard

    text = commit.files["README.md"].decode("utf-8")
    card = ModelCard(text)
    assert card.data.datasets == [DATASET]
    assert card.data.library_name == "transformers" and card.data.license == "other"
    assert "retclip" in card.data.tags
    layout = RunLayout.of_folder(finished)
    results = json.loads(layout.results.read_text(encoding="utf-8"))
    convert = json.loads(layout.state.read_text(encoding="utf-8"))["stages"]["convert"]["summary"]
    assert f"Data set: `{DATASET}`" in text
    assert f"| train | {convert['train_images']} | {convert['train_pairs']} |" in text
    assert f"| test | {convert['test_images']} | {convert['test_pairs']} |" in text
    templates = results["zero_shot"]["templates"]
    assert (
        f"| templates | {templates['accuracy']} | {templates['balanced_accuracy']} | "
        f"{templates['macro_f1']} |" in text
    )
    i2t = results["retrieval"]["class"]["image_to_text"]
    assert f"| class-level | image to text | {i2t['R@1']} | {i2t['R@5']} |" in text
    assert "| context length | 24 |" in text and "| frozen towers | none |" in text
    for figure in (n for n in expected if n.startswith("figures/")):
        assert f"({figure})" in text, figure
    assert "@inproceedings{du2024retclip" in text and "2405.14137" in text
    assert "MICCAI 2024" in text and "Clinical" in text
    # no local path in what goes public; the run folder keeps the same card
    assert (
        str(finished) not in text
        and str(finished) not in commit.files["evaluation_results.json"].decode()
    )
    assert layout.model_card.read_text(encoding="utf-8") == text

    # the token: in no uploaded file, no output line, no file the command wrote
    secret = hubstand.GOOD
    assert all(secret.encode() not in data for data in commit.files.values())
    assert secret not in result.stdout + result.stderr
    assert secret.encode() not in layout.model_card.read_bytes()
    assert "[push] pushed as one commit" in result.stderr
    assert result.stdout.strip().startswith(f"{hub.url}/{REPO}/commit/")


def test_the_cards_loading_code_runs_against_the_pushed_repo(
    hub, finished, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", hubstand.GOOD)
    assert main(["push", "--run", str(finished), "--repo", REPO]) == 0, capsys.readouterr().err
    assert "visibility" not in hub.created[0]  # not --private: the namespace's default
    card = hub.commits[0].files["README.md"].decode("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(blocks) == 2
    script = (
        blocks[0]
        + "print('RETCLIP', tuple(texts.shape), tuple(images.shape))\n"
        + blocks[1]
        + "print('TOWERS', type(vision).__name__, type(text).__name__)\n"
    )
    env = _env(hub, None) | {"HF_HOME": str(tmp_path / "fresh-cache")}  # anonymous download
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    dim = json.loads((RunLayout.of_folder(finished).export / "retclip_config.json").read_text())[
        "embed_dim"
    ]
    assert f"RETCLIP (1, {dim}) (1, {dim})" in ran.stdout
    assert "TOWERS ChineseCLIPVisionModel BertModel" in ran.stdout


def _push(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["push", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_lists_the_files_writes_the_card_and_sends_nothing(hub, finished, capsys):
    code, out, err = _push(capsys, "--run", str(finished), "--repo", REPO, "--dry-run")
    assert code == 0, err
    listed = {line.split("\t")[0] for line in out.splitlines() if "\t" in line}
    assert listed == set(_expected_files(finished)) | {"README.md", "evaluation_results.json"}
    assert hub.log == [] and hub.commits == []
    assert "2405.14137" in RunLayout.of_folder(finished).model_card.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("token", "status", "words"),
    [
        (None, None, "no Hugging Face token"),
        (hubstand.BAD, 401, "refused the token from HF_TOKEN (401"),
        (hubstand.READ, 403, f"may not write to {REPO} (403)"),
    ],
)
def test_a_missing_or_refused_token_is_one_line(
    hub, finished, capsys, monkeypatch, token, status, words
):
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    code, out, err = _push(capsys, "--run", str(finished), "--repo", REPO)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err and hub.commits == []
    if token:
        assert token not in out + err
        assert hub.count("POST", "/api/repos/create") == 1
    else:
        assert hub.log == []  # nothing asked without a token


def test_an_unfinished_run_or_a_bad_repo_name_is_one_line(
    hub, built_demo, finished, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", hubstand.GOOD)
    cases = [
        (built_demo, REPO, "has no finished training export"),
        (tmp_path / "nothing", REPO, "is not a run folder"),
        (finished, "no-namespace", "not a valid model repo name"),
        (finished, "tester/bad--name", "not a valid model repo name"),
        (finished, "a/b/c", "not a valid model repo name"),
    ]
    for run, repo, words in cases:
        code, out, err = _push(capsys, "--run", str(run), "--repo", repo)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (run, repo, err)
    RunLayout.of_folder(finished).results.unlink()
    code, out, err = _push(capsys, "--run", str(finished), "--repo", REPO)
    assert code == 2 and "run its evaluate stage first" in err
    assert hub.log == [] and hub.commits == []


def test_a_license_the_hub_does_not_know_is_one_line(hub, finished, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hubstand.GOOD)
    code, out, err = _push(capsys, "--run", str(finished), "--repo", REPO, "--license", "apache2")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--license 'apache2' is not a Hugging Face license identifier" in err
    assert "did you mean apache-2.0?" in err
    assert hub.log == [] and hub.commits == []
    card = RunLayout.of_folder(finished).model_card
    assert not card.exists()
    args = ["--run", str(finished), "--repo", REPO, "--license", "CC-BY-4.0", "--dry-run"]
    code, out, err = _push(capsys, *args)
    assert code == 0, err
    assert "\nlicense: cc-by-4.0\n" in card.read_text(encoding="utf-8")


def test_an_unreachable_hub_is_one_line(hub, finished, capsys, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", hubstand.GOOD)
    code, out, err = _push(capsys, "--run", str(finished), "--repo", REPO)
    assert code == 2 and "could not be reached" in err and "Traceback" not in err
    assert hubstand.GOOD not in out + err


def test_a_run_folder_with_a_space_leaves_no_path_in_what_is_pushed():
    from retclip_pipeline.hub.card import public_results

    said = "/content/drive/My Drive/runs/full/logs/full/checkpoints/best.pt (best epoch 3 of 30)"
    assert public_results({"checkpoint": said})["checkpoint"] == "best.pt (best epoch 3 of 30)"
    assert public_results({"checkpoint": "/a b/epoch_latest.pt"})["checkpoint"] == (
        "epoch_latest.pt"
    )


def test_the_card_says_how_the_towers_started_the_precision_used_and_counts_patients(finished):
    from retclip_pipeline.hub import card
    from retclip_pipeline.hub.push import finished_run

    layout, profile, results = finished_run(finished)
    text = str(card.build(layout, profile, results, REPO, []))
    assert "| started from | random initialisation (the tiny preset towers) |" in text, text
    assert "| precision | fp32 (auto) |" in text  # what "auto" became on the CPU
    assert "| split | images | image-text pairs |" in text
    tested = results["sizes"]["test_images"]
    assert f"On the test split ({tested} images, " in text
    profile.data.eyes = "paired"  # one record a patient: two eye images
    profile.model.text = "bert-base-uncased"
    text = str(card.build(layout, profile, results, REPO, []))
    assert "| split | patients (two eye images each) | patient-text pairs |" in text
    assert f"On the test split ({tested} patients, " in text
    assert "random initialisation for the vision tower (tiny), pretrained text tower" in text


@pytest.mark.parametrize("text", ["[]", "3", '"x"', "null"])
def test_results_that_are_json_but_no_object_are_one_line(hub, finished, capsys, text):
    """Valid JSON that is not an object in evaluation_results.json (edited, or written by
    another tool) was a traceback from the card; it is one line naming the file."""
    results = RunLayout.of_folder(finished).results
    results.write_text(text, encoding="utf-8")
    code, out, err = _push(capsys, "--run", str(finished), "--repo", REPO, "--dry-run")
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(results) in lines[0], err
    assert "rerun the evaluate stage" in lines[0]
    assert hub.log == [] and not RunLayout.of_folder(finished).model_card.exists()


@pytest.mark.parametrize("text", ["[]", "3", '"x"', '{"splits": [1]}', '{"splits": {"train": 3}}'])
def test_the_card_takes_summaries_and_figures_of_the_wrong_shape(finished, text):
    """A convert report or a stage summary holding JSON of another shape, and results whose
    blocks are lists or numbers, give a card with "?" where the figures were."""
    import json

    from retclip_pipeline.hub import card
    from retclip_pipeline.hub.push import finished_run

    layout, profile, results = finished_run(finished)
    layout.convert_report.write_text(text, encoding="utf-8")
    state = json.loads(layout.state.read_text(encoding="utf-8"))
    state["stages"]["convert"]["summary"] = json.loads(text)
    state["stages"]["train"]["summary"] = json.loads(text)
    layout.state.write_text(json.dumps(state), encoding="utf-8")
    for stage in ("convert", "train"):
        receipt = layout.receipts / f"{stage}.json"
        receipt.write_text(json.dumps(state["stages"][stage]), encoding="utf-8")
    odd = {
        "retrieval": {"instance": {"image_to_text": [1], "text_to_image": 3}},
        "zero_shot": {"class_names": {"accuracy": 0.5, "auc_ovr": [0.5]}},
        "sizes": [4],
        "caveats": "one caveat",
        "checkpoint": 7,
    }
    for shaped in (json.loads(text), odd, results | {"zero_shot": [], "retrieval": "x"}):
        built = str(card.build(layout, profile, shaped, REPO, []))
        assert "| train | ? | ? |" in built
        assert "## Citation" in built
        assert isinstance(card.public_results(shaped), dict)
    built = str(card.build(layout, profile, odd, REPO, []))
    assert "| train | ? | ? |" in built and "On the test split (? images, ? texts)" in built
    assert "| class names | 0.5 |  |  | n/a |" in built and "- one caveat" in built
