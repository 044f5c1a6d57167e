"""A hand-written profile saved again keeps its comments and layout (toml_keep)."""

from __future__ import annotations

import tomllib

from retclip_pipeline.toml_keep import comments, merged

OLD = """# my profile: a comment at the top
name = "mine"   # the run's name

[hub]
dataset = "org/set#1" # a '#' inside a string is no comment

[train]
epochs = 30     # many passes
lr = 0.0005     # from scratch
report_to = [
    "tensorboard", # curves
]
# the end of the train table
"""


def full(**train):
    table = {"epochs": 30, "lr": 0.0005, "report_to": ["tensorboard"], "batch_size": 64}
    return {"name": "mine", "workdir": "runs/mine", "hub": {"dataset": "org/set#1"}} | {
        "train": table | train
    }


def test_unchanged_values_keep_the_file_as_it_is():
    wanted = {"name": "mine", "workdir": "runs/mine", "hub": {"dataset": "org/set#1"}}
    wanted["train"] = {"epochs": 30, "lr": 0.0005, "report_to": ["tensorboard"]}
    text = merged(OLD, wanted, full())
    assert text is not None
    assert text.replace('workdir = "runs/mine"\n', "") == OLD  # the new key at the top


def test_a_changed_value_keeps_its_comment_and_a_default_goes():
    every = full(epochs=12, report_to=[])  # back to its default: written as such, in place
    wanted = {"name": "mine", "workdir": "runs/mine", "hub": {"dataset": "org/set#1"}}
    wanted["train"] = {"epochs": 12, "lr": 0.0005}
    wanted["sizing"] = {"mode": "smoke"}
    every["sizing"] = {"mode": "smoke"}
    text = merged(OLD, wanted, every)
    assert text is not None
    assert "epochs = 12     # many passes\n" in text, text  # the comment at its column
    assert "lr = 0.0005     # from scratch\nreport_to = []\n" in text, text
    assert '"tensorboard"' not in text
    assert text.rstrip().endswith('[sizing]\nmode = "smoke"'), text
    for comment in ("# my profile: a comment at the top", "# the run's name", "# from scratch"):
        assert comment in text
    assert "# the end of the train table" in text
    data = tomllib.loads(text)
    assert data["train"] == {"epochs": 12, "lr": 0.0005, "report_to": []}
    assert data["hub"]["dataset"] == "org/set#1"
    assert comments(text)[:2] == ["# my profile: a comment at the top", "# the run's name"]


def test_a_layout_it_does_not_know_is_written_afresh():
    wanted = {"name": "mine", "train": {"epochs": 3}}
    assert merged('name = "mine"\ntrain.epochs = 3\n', wanted, wanted) is None  # dotted
    assert merged('name = "mine"\n[[train]]\nepochs = 3\n', wanted, wanted) is None
    assert merged("name = [unclosed\n", wanted, wanted) is None
