"""Evaluation: metrics checked by hand and recomputed independently from the saved features."""

import json
import math

import numpy as np
import pytest
import torch

from retclip_pipeline import profile as profiles
from retclip_pipeline.errors import UserError
from retclip_pipeline.evaluation import metrics
from retclip_pipeline.runner import run

from .conftest import demo_toml, write_profile


def test_retrieval_by_hand():
    # Image i points along axis i. Texts: t0, t1 belong to image 0 (class A), t2 to image 1
    # (A), t3 to image 2 (B). t1 points at image 1 instead of image 0.
    images = torch.eye(3)
    texts = torch.tensor([[1.0, 0, 0], [0, 1.0, 0.1], [0.3, 0.9, 0], [0, 0, 1.0]])
    result = metrics.retrieval(
        images,
        texts,
        ["a", "b", "c"],
        [["a"], ["a"], ["b"], ["c"]],
        ["A", "A", "B"],
        ["A", "A", "A", "B"],
    )
    # image->text top 1: image a -> t0 (hit), image b -> t1 (owned by a: miss), c -> t3 (hit)
    assert result["instance"]["image_to_text"]["R@1"] == pytest.approx(2 / 3, abs=1e-4)
    # class-level: image b (class A) -> t1 (class A): a hit, so every image hits
    assert result["class"]["image_to_text"]["R@1"] == 1.0
    # text->image top 1: t0 -> a (hit), t1 -> b (miss), t2 -> b (hit), t3 -> c (hit)
    assert result["instance"]["text_to_image"]["R@1"] == 0.75
    # the ceiling: class A has 2 images and 3 texts, B 1 and 1
    assert result["instance_ceiling"]["text_to_image"]["R@1"] == pytest.approx(
        (0.5 * 3 + 1) / 4, abs=1e-4
    )


def _plain_retrieval(images, texts, image_ids, text_image_ids, image_labels, text_labels):
    """Unrounded R@1/5/10 both ways, written plainly: each query's candidates sorted by
    (-similarity, index), a hit when a relevant one is among the first K."""

    def unit(rows):
        return [[x / math.sqrt(sum(v * v for v in row)) for x in row] for row in rows.tolist()]

    image_vectors, text_vectors = unit(images.double()), unit(texts.double())
    sims = [
        [sum(a * b for a, b in zip(i, t, strict=True)) for t in text_vectors] for i in image_vectors
    ]

    def recalls(queries, candidates, similarity, relevant):
        out = {}
        for k in (1, 5, 10):
            hits = 0
            for q in range(queries):
                order = sorted(range(candidates), key=lambda c: (-similarity(q, c), c))
                hits += any(relevant(q, c) for c in order[:k])
            out[f"R@{k}"] = hits / queries
        return out

    def level(relevant):  # relevant(image, text)
        n_images, n_texts = len(image_vectors), len(text_vectors)
        return {
            "image_to_text": recalls(n_images, n_texts, lambda q, c: sims[q][c], relevant),
            "text_to_image": recalls(
                n_texts, n_images, lambda q, c: sims[c][q], lambda q, c: relevant(c, q)
            ),
        }

    out = {"instance": level(lambda i, t: image_ids[i] in text_image_ids[t])}
    if image_labels and text_labels:
        out["class"] = level(lambda i, t: image_labels[i] == text_labels[t])
    return out


def _assert_same_recalls(result, plain):
    """Each R@K, each direction's mean and the mean of all six, rounded from exact values."""
    for level, directions in plain.items():
        every = []
        for direction, recalls in directions.items():
            assert result[level][direction] == {k: round(v, 4) for k, v in recalls.items()} | {
                "mean_recall": round(sum(recalls.values()) / 3, 4)
            }, (level, direction)
            every += recalls.values()
        assert result[level]["mean_recall_all"] == round(sum(every) / 6, 4), level


@pytest.mark.parametrize(("n_images", "n_texts", "seed"), [(3, 8, 0), (8, 3, 1), (12, 30, 2)])
def test_retrieval_matches_a_plain_implementation_with_ties_and_few_candidates(
    n_images, n_texts, seed
):
    # Few distinct vectors in 4 dimensions: duplicate images and duplicate texts tie exactly.
    # With fewer than 10 candidates in a direction, R@10 (and R@5) count all of them.
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(6, 4, generator=generator)

    def draw(n):
        return prototypes[torch.randint(0, 6, (n,), generator=generator)]

    images, texts = draw(n_images), draw(n_texts)
    image_ids = [f"img{i}" for i in range(n_images)]
    owners = torch.randint(0, n_images, (n_texts, 2), generator=generator).tolist()
    # Some texts belong to two images. Classes, both sides: A, B, C, A, ...
    text_image_ids = [
        [image_ids[a]] + ([image_ids[b]] if t % 3 == 0 else []) for t, (a, b) in enumerate(owners)
    ]
    image_labels = [("A", "B", "C")[i % 3] for i in range(n_images)]
    text_labels = [("A", "B", "C")[t % 3] for t in range(n_texts)]
    args = (images, texts, image_ids, text_image_ids, image_labels, text_labels)
    _assert_same_recalls(metrics.retrieval(*args), _plain_retrieval(*args))


def test_ties_rank_the_lower_index_first_where_topk_did_not():
    # Twelve copies of one image and twelve of one text: every similarity ties. Texts 0-5
    # belong to image 0, texts 6-11 to image 1.
    images, texts = torch.ones(12, 4), torch.ones(12, 4)
    image_ids = [f"img{i}" for i in range(12)]
    text_image_ids = [["img0"]] * 6 + [["img1"]] * 6
    sims = images @ texts.t()
    stable = torch.sort(sims.t(), dim=1, descending=True, stable=True).indices[:, :10]
    assert not torch.equal(sims.t().topk(10, dim=1).indices, stable)  # topk's order differs
    result = metrics.retrieval(images, texts, image_ids, text_image_ids, None, None)
    # text->image, by position: image 0 first, image 1 second.
    assert result["instance"]["text_to_image"] == {
        "R@1": 0.5,
        "R@5": 1.0,
        "R@10": 1.0,
        "mean_recall": 0.8333,
    }
    # image->text: image 0 finds text 0 first, image 1 its first text at rank 7, and the
    # other ten images own none.
    assert result["instance"]["image_to_text"] == {
        "R@1": 0.0833,
        "R@5": 0.0833,
        "R@10": 0.1667,
        "mean_recall": 0.1111,
    }
    _assert_same_recalls(
        result, _plain_retrieval(images, texts, image_ids, text_image_ids, None, None)
    )


def test_means_are_taken_before_rounding_and_each_direction_counts_its_own_candidates():
    # Three images (axes) and eight texts. Image 0 ranks its text first; images 1 and 2 rank
    # theirs 7th of 8: image->text R@1 = R@5 = 1/3, R@10 = 1 (every candidate).
    images = torch.eye(3)
    texts = torch.tensor([[1.0, 0, 0], [0, 0.1, 1], [0, 1, 0.1]] + [[0.2, 1, 1]] * 5)
    text_image_ids = [["a"], ["b"], ["c"]] + [["a"]] * 5
    result = metrics.retrieval(images, texts, ["a", "b", "c"], text_image_ids, None, None)
    i2t = result["instance"]["image_to_text"]
    assert (i2t["R@1"], i2t["R@5"], i2t["R@10"]) == (0.3333, 0.3333, 1.0)
    # (1/3 + 1/3 + 1) / 3 = 0.55556; from the rounded values it would be 0.5555.
    assert i2t["mean_recall"] == 0.5556


def test_classification_by_hand():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    result = metrics.classification([0, 1, 1, 1], scores, ["x", "y"])
    assert result["accuracy"] == 0.75
    assert result["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert result["confusion_matrix"] == [[1, 0], [1, 2]]
    assert result["per_class"]["x"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert result["auc_ovr"]["per_class"]["y"] == 1.0


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, demo_root):
    folder = tmp_path_factory.mktemp("eval")
    profile = profiles.load(write_profile(folder, demo_toml(demo_root, train={"epochs": 2})))
    run(profile, profile.workdir_path(), lambda e: None)
    return profile.workdir_path()


def _independent_recall(images, texts, image_ids, text_owners, k):
    """Recall@k image->text, written plainly: any owned text among the k most similar."""
    images = images / images.norm(dim=1, keepdim=True)
    texts = texts / texts.norm(dim=1, keepdim=True)
    hits = 0
    for row, image_id in enumerate(image_ids):
        order = sorted(range(len(texts)), key=lambda c: -float(images[row] @ texts[c]))
        hits += any(image_id in text_owners[c] for c in order[:k])
    return hits / len(image_ids)


def test_results_recomputed_from_saved_features(evaluated):
    folder = evaluated / "evaluation"
    results = json.loads((folder / "evaluation_results.json").read_text())
    images = torch.load(folder / "test_imgs_features.pt", weights_only=True)
    texts = torch.load(folder / "test_texts_features.pt", weights_only=True)
    for k in (1, 5):
        expected = _independent_recall(
            images["patient"], texts["patient"], images["ids"], texts["image_ids"], k
        )
        assert results["retrieval"]["instance"]["image_to_text"][f"R@{k}"] == pytest.approx(
            expected, abs=1e-4
        )
    assert images["eye"].shape == images["patient"].shape
    # Zero-shot, recomputed from the saved class embeddings.
    classes = torch.load(folder / "class_embeddings.pt", weights_only=True)
    truth = [classes["classes"].index(label) for label in images["labels"]]
    scores = torch.nn.functional.normalize(images["patient"], dim=-1) @ classes["templates"].t()
    accuracy = float((scores.argmax(1) == torch.tensor(truth)).float().mean())
    assert results["zero_shot"]["templates"]["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert (folder / "train_imgs_features.pt").exists()
    assert set(results) >= {
        "schema_version",
        "run",
        "checkpoint",
        "fingerprint",
        "sizes",
        "retrieval",
        "zero_shot",
        "linear_probe",
        "caveats",
    }
    zero_shot = results["zero_shot"]["templates"]
    assert len(zero_shot["confusion_matrix"]) == 10 and "auc_ovr" in zero_shot
    assert "train_prompts" in results["zero_shot"]
    report = (folder / "report.md").read_text()
    assert "| instance-level | image to text |" in report and "## Caveats" in report
    assert "| class-level | both (mean of six) |" in report  # the figure papers cite
    for name in (
        "confusion_templates.png",
        "per_class_f1_templates.png",
        "training_curves.png",
        "example_text_query_1.png",
        "example_image_query_1.png",
    ):
        assert (folder / name).stat().st_size > 1000, name


def test_untrained_baseline_and_a_missing_checkpoint(tmp_path, demo_root):
    text = demo_toml(demo_root, train={"epochs": 1})
    profile = profiles.load(write_profile(tmp_path, text))
    with pytest.raises(UserError, match="needs train|no checkpoint"):
        run(
            profile,
            profile.workdir_path(),
            lambda e: None,
            selected=["convert", "lmdb", "evaluate"],
        )
    profile.eval.checkpoint = "init"
    summaries = run(
        profile, profile.workdir_path(), lambda e: None, selected=["convert", "lmdb", "evaluate"]
    )
    assert "zero_shot_accuracy" in summaries["evaluate"]
    results = json.loads(
        (profile.workdir_path() / "evaluation/evaluation_results.json").read_text()
    )
    assert results["checkpoint"].startswith("untrained")
    # A mistyped checkpoint: said by --check, and before the evaluation it would redo is gone.
    from retclip_pipeline.preflight.check import run_checks

    profile.eval.checkpoint = str(tmp_path / "no-such.pt")
    items = {item.name: item for item in run_checks(profile, profile.workdir_path())}
    assert not items["checkpoint to evaluate"].ok
    with pytest.raises(
        UserError, match="no checkpoint at .*named by eval.checkpoint or --checkpoint"
    ):
        run(profile, profile.workdir_path(), lambda e: None, selected=["evaluate"])
    kept = profile.workdir_path() / "evaluation/evaluation_results.json"
    assert json.loads(kept.read_text()) == results


def test_compare_prints_and_saves_one_table(evaluated, tmp_path, capsys):
    from retclip_pipeline.__main__ import main

    out = tmp_path / "table"
    assert main(["compare", str(evaluated), str(evaluated), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "class i2t mean" in printed and printed.count("tiny + tiny") == 2
    rows = json.loads(out.with_suffix(".json").read_text())
    results = json.loads((evaluated / "evaluation/evaluation_results.json").read_text())
    assert rows[0]["zero-shot acc"] == results["zero_shot"]["templates"]["accuracy"]
    assert out.with_suffix(".md").read_text().startswith("| run |")
    assert main(["compare", str(tmp_path)]) == 2  # no evaluation there: one line, exit 2
    assert "has no evaluation" in capsys.readouterr().err


def test_embed_query_and_the_python_api(evaluated, demo_root, tmp_path, capsys):
    from retclip_pipeline import api
    from retclip_pipeline.__main__ import main

    images = sorted((demo_root / "test" / "Myopia").glob("*.jpg"))
    run = api.load(evaluated)
    features = run.encode_images(images)
    assert features.shape[0] == len(images)
    assert torch.allclose(features.norm(dim=1), torch.ones(len(images)), atol=1e-5)
    top = run.classify(images[:2], top=3)
    assert len(top) == 2 and len(top[0]) == 3
    probabilities = [p for _, p in top[0]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[0] <= 1
    with pytest.raises(UserError, match=r"head 'middle' .*choose 'patient', 'left', 'right'"):
        run.encode_texts(["a tessellated fundus"], head="middle")

    out = tmp_path / "emb.pt"
    assert (
        main(
            ["embed", "--run", str(evaluated), "--images", str(images[0].parent), "--out", str(out)]
        )
        == 0
    )
    saved = torch.load(out, weights_only=True)
    assert saved["patient"].shape[0] == len(images) and len(saved["paths"]) == len(images)
    assert main(["query", "--run", str(evaluated), "a tessellated fundus", "--k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "1. image" in printed and "2. image" in printed
    assert main(["query", "--run", str(evaluated), "--image", str(images[0])]) == 0
    assert "classes: " in capsys.readouterr().out
    assert main(["query", "--run", str(tmp_path)]) == 2


def test_embed_and_query_read_best_pt_by_default_as_their_help_says(
    evaluated, tmp_path, capsys, monkeypatch
):
    from retclip_pipeline.__main__ import main

    for command in ("embed", "query"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        assert "else the training's best.pt, else its latest" in shown, shown
        assert "default: the latest" not in shown
    texts = tmp_path / "texts.txt"
    texts.write_text("a tessellated fundus\n")
    args = ["embed", "--run", str(evaluated), "--texts", str(texts), "--out", str(tmp_path / "e")]
    assert (evaluated / "logs/t/checkpoints/best.pt").is_file()
    assert main(args) == 0
    assert "checkpoints/best.pt (" in capsys.readouterr().out
    monkeypatch.chdir(evaluated.parent)  # a path given on the command line is the user's
    assert main([*args, "--checkpoint", "run/logs/t/checkpoints/epoch_latest.pt"]) == 0
    assert "checkpoints/epoch_latest.pt (epoch" in capsys.readouterr().out


def test_a_run_without_labels_gets_retrieval_only(tmp_path, demo_root):
    text = demo_toml(demo_root, data={"label_column": "", "dataset_label_column": ""})
    profile = profiles.load(write_profile(tmp_path, text))
    run(profile, profile.workdir_path(), lambda e: None)
    results = json.loads(
        (profile.workdir_path() / "evaluation/evaluation_results.json").read_text()
    )
    assert results["note"].startswith("the test images carry no labels")
    assert "class" not in results["retrieval"] and "zero_shot" not in results
    assert (
        "Note: the test images carry no labels"
        in (profile.workdir_path() / "evaluation/report.md").read_text()
    )


def test_a_checkpoint_of_other_towers_is_one_clear_error(evaluated, tmp_path, demo_root, capsys):
    from retclip_pipeline.__main__ import main

    checkpoint = evaluated / "logs/t/checkpoints/epoch_latest.pt"
    other = write_profile(
        tmp_path, demo_toml(demo_root, workdir=str(tmp_path / "other"), data={"image_size": 48})
    )
    assert main(["--profile", str(other), "--stages", "convert,lmdb"]) == 0
    capsys.readouterr()
    assert (
        main(["--profile", str(other), "--stages", "evaluate", "--checkpoint", str(checkpoint)])
        == 2
    )
    err = capsys.readouterr().err
    assert "does not fit model.vision/model.text" in err and "position_embedding" in err
    assert "Traceback" not in err


def test_per_eye_retrieval_reads_each_eyes_own_features_and_prompts():
    """Left images match their left prompts and right ones their right prompts, while the
    patient features would match neither: per-eye figures must use each eye's own."""
    from types import SimpleNamespace

    from retclip_pipeline.evaluation import per_eye

    eye = torch.eye(4)
    images = {
        "ids": [0, 1, 2, 3],
        "patient": -eye,
        "left": eye,
        "right": eye.flip(0),
        "labels_left": ["a", "a", "b", "b"],
        "labels_right": ["b", "b", "a", "a"],
    }
    texts = [
        {
            "text_id": i,
            "image_ids": [i],
            "text_left": f"L{i}",
            "text_right": f"R{i}",
            "label_left": images["labels_left"][i],
            "label_right": images["labels_right"][i],
        }
        for i in range(4)
    ]
    seen = []

    def encode(side, batch):
        seen.append((side, list(batch)))
        if batch and batch[0] in ("L0", "R0"):  # the eye prompts: one axis a patient
            return eye if side == "left" else eye.flip(0)
        # the class prompts: "a" along axes 0-1, "b" along 2-3, where each eye's images lie
        rows = [eye[0] + eye[1] if "a" in text else eye[2] + eye[3] for text in batch]
        return torch.stack(rows)

    cfg = SimpleNamespace(templates=["{}"], class_names={})
    out, features = per_eye.evaluate(encode, images, texts, [], cfg)
    assert ("left", ["L0", "L1", "L2", "L3"]) in seen and (
        "right",
        ["R0", "R1", "R2", "R3"],
    ) in seen
    for side in ("left", "right"):
        retrieval = out[side]["retrieval"]
        assert retrieval["instance"]["image_to_text"]["R@1"] == 1.0
        assert retrieval["class"]["text_to_image"]["R@1"] == 1.0
        assert out[side]["zero_shot"]["templates"]["accuracy"] == 1.0
        assert torch.equal(features[side], eye if side == "left" else eye.flip(0))


def test_a_whole_run_on_the_cpu_warns_of_it_once(tmp_path, demo_root):
    """Training says that no GPU was found; the evaluation after it does not say it again
    (a log file holds no repeated warning), and names its device in its first line."""
    profile = profiles.load(write_profile(tmp_path, demo_toml(demo_root, train={"epochs": 1})))
    events = []
    run(profile, profile.workdir_path(), events.append)
    said = [e.stage for e in events if e.level == "warning" and "no GPU found" in e.message]
    assert said == ([] if torch.cuda.is_available() else ["train"])
    device = "GPU" if torch.cuda.is_available() else "CPU"
    assert any(e.message.endswith(f"on the {device}") for e in events if e.stage == "evaluate")


def test_the_ceiling_of_a_class_the_other_side_lacks_is_zero():
    # Images of classes A, A, B; texts of A only: no text can be found for the B image.
    images, texts = torch.eye(3), torch.eye(3)[:2]
    result = metrics.retrieval(
        images, texts, ["a", "b", "c"], [["a"], ["b"]], ["A", "A", "B"], ["A", "A"]
    )
    ceiling = result["instance_ceiling"]
    assert ceiling["image_to_text"] == {"R@1": 0.3333, "R@5": 0.6667, "R@10": 0.6667}
    assert ceiling["text_to_image"] == {"R@1": 0.5, "R@5": 1.0, "R@10": 1.0}


@pytest.mark.parametrize(
    "content,words",
    [
        (b"[]", "holds list where the evaluation's results"),
        (b"3", "holds int where"),
        (b"{", "cannot be read (JSONDecodeError)"),
        (b'{"run": "\xff"}', "cannot be read (UnicodeDecodeError)"),
    ],
)
def test_compare_names_a_results_file_it_cannot_use(tmp_path, capsys, content, words):
    """Results that are damaged, not UTF-8 or JSON but no object were a traceback."""
    from retclip_pipeline.__main__ import main

    results = tmp_path / "run/evaluation/evaluation_results.json"
    results.parent.mkdir(parents=True)
    results.write_bytes(content)
    assert main(["compare", str(tmp_path / "run"), "--out", str(tmp_path / "table")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(results) in err and words in err and "rerun that run's evaluate stage" in err
    assert not (tmp_path / "table.json").exists()


def test_compare_takes_a_damaged_profile_copy_and_odd_blocks(tmp_path, capsys):
    from retclip_pipeline.__main__ import main

    run = tmp_path / "run"
    (run / "evaluation").mkdir(parents=True)
    (run / "evaluation/evaluation_results.json").write_text(
        json.dumps({"retrieval": [1], "zero_shot": {"templates": 3}, "linear_probe": "x"})
    )
    for text in (b"[model\n", b"model = 3\n", b"\xff\n"):
        (run / "profile.resolved.toml").write_bytes(text)
        assert main(["compare", str(run), "--out", str(tmp_path / "table")]) == 0
        rows = json.loads((tmp_path / "table.json").read_text())
        assert rows[0]["run"] == "run" and rows[0]["zero-shot acc"] == ""
        assert "towers" not in rows[0]
    capsys.readouterr()


@pytest.mark.parametrize(
    "content", [b"[]", b"{", b"\xff\xfe", b'{"near_duplicates": [1], "tokens": 3, "splits": []}']
)
def test_caveats_say_so_when_the_conversion_report_cannot_be_read(tmp_path, content):
    """A conversion report that is damaged, not UTF-8 or JSON of another shape was a
    traceback at the end of the evaluation; its caveats are said to be unknown instead."""
    from retclip_pipeline.evaluation.report import caveats
    from retclip_pipeline.layout import RunLayout

    layout = RunLayout(tmp_path / "run", "retclip")
    layout.data.mkdir(parents=True)
    layout.convert_report.write_bytes(content)
    said = caveats(layout, None)
    unknown = [c for c in said if "could not be read" in c and str(layout.convert_report) in c]
    assert len(unknown) == (0 if content.startswith(b'{"near') else 1), said
    assert said[-1].startswith("prompts describe the class")


def test_training_curves_leave_out_lines_that_are_no_epoch(tmp_path):
    """A metrics.jsonl line torn by a kill, edited or not UTF-8 was a traceback that left
    the run without its evaluation; the curves are drawn from the epochs' records."""
    from retclip_pipeline.evaluation.figures import _history, curves

    metrics = tmp_path / "metrics.jsonl"
    good = [{"epoch": 1, "train_loss": 2.0, "val_loss": 2.1}, {"epoch": 2, "train_loss": 1.5}]
    lines = [json.dumps(good[0]).encode(), b"[]", b'{"epoch": "x"}', b"\xff", b"null"]
    metrics.write_bytes(b"\n".join([*lines, json.dumps(good[1]).encode(), b'{"epoch": 3, "tr']))
    assert _history(metrics) == good
    curves(_history(metrics), tmp_path / "curves.png")  # val_loss in one epoch only: not drawn
    assert (tmp_path / "curves.png").stat().st_size > 0
