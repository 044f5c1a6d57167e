"""What the Data screen shows, from the core: a glance at any file (one line for what is not
CSV text, notes for what looks wrong), the columns a profile needs and the problems that
block Next, and the data set's check offline."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from retclip_pipeline.data.prompts import read_prompts
from retclip_pipeline.errors import UserError
from retclip_pipeline.preflight.inspect import (
    column_guide,
    column_problems,
    csv_problems,
    data_report,
    glance,
    guess_columns,
)
from retclip_pipeline.profile import DataSection, Profile

HEADER = "dataset_index,label,prompt\n"


@pytest.mark.parametrize(
    "content,said",
    [
        (HEADER + "0,A,one, two\n", "line 2: 4 fields, the header has 3: an unquoted comma?"),
        (HEADER + "0,A\n", "line 2: 2 field(s), the header has 3"),
        (HEADER + '0,A,"open\n1,B,x\n2,C,y\n', "line 2: a quote opens on this line"),
        (HEADER, "a header and no rows"),
        ("prompt\nx\n", "one column only"),
        ("dataset_index\tlabel\tprompt\n0\tA\tx\n", "looks tab-separated"),
        ("a;b;c\n1;2;3\n", "looks semicolon-separated"),
        ("dataset_index,label,prompt,label\n0,A,x,B\n", "column 'label' appears 2 times"),
    ],
)
def test_glance_notes_what_looks_wrong(tmp_path, content, said):
    path = tmp_path / "p.csv"
    path.write_text(content, encoding="utf-8")
    seen = glance(path)
    assert any(said in note for note in seen.notes), seen.notes
    assert all(len(row) == len(seen.header) for row in seen.rows)


@pytest.mark.parametrize(
    "content,said",
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "line 1 is not UTF-8 text"),
        ((HEADER + "0,A,caf\xe9\n").encode("latin-1"), "line 2 is not UTF-8 text"),
        (b"y" * (3 << 20), "first line is over 1 MB"),
    ],
)
def test_glance_refuses_what_is_no_csv_text_in_one_line(tmp_path, content, said):
    path = tmp_path / "p.csv"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        glance(path)
    assert said in str(caught.value) and len(str(caught.value)) < 300


def test_glance_reads_the_start_of_a_big_file_only(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "".join(f"{i},A,prompt {i}\n" for i in range(200_000)))
    seen = glance(path, 4)
    assert seen.rows[-1] == ["3", "A", "prompt 3"] and not seen.notes
    assert guess_columns(path) == {
        "index_column": "dataset_index",
        "text_column": "prompt",
        "label_column": "label",
    }


def test_a_huge_header_is_named_short(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x" * 2_000_000 + "\n0\n")
    with pytest.raises(UserError) as caught:
        read_prompts(path, DataSection(), None)
    assert "has no column 'dataset_index'" in str(caught.value)
    assert len(str(caught.value)) < 400


def _profile(tmp_path, train: str, test: str | None = None, **data) -> Profile:
    profile = Profile()
    profile.data = dataclasses.replace(profile.data, **data)
    (tmp_path / "train.csv").write_text(train, encoding="utf-8")
    profile.data.train_csv = str(tmp_path / "train.csv")
    if test is not None:
        (tmp_path / "test.csv").write_text(test, encoding="utf-8")
        profile.data.test_csv = str(tmp_path / "test.csv")
    return profile


def test_column_problems_name_the_key_to_fix(tmp_path):
    profile = _profile(tmp_path, "idx,label,prompt,prompt\n0,A,x,y\n", HEADER + "0,A,x\n")
    assert column_problems(profile) == {
        "data.index_column": "'dataset_index' is not in the train CSV: its columns are idx, "
        "label, prompt, prompt",
        "data.text_column": "'prompt' appears 2 times in the train CSV",
    }
    profile = _profile(tmp_path, HEADER + "0,A,x\n", "dataset_index\tlabel\tprompt\n")
    problems = column_problems(profile)
    assert "not in the test CSV: its only column is" in problems["data.index_column"]
    assert "tab-separated" in problems["data.index_column"]
    profile = _profile(tmp_path, HEADER, label_column="")  # a header only: validating says it
    assert column_problems(profile) == {}
    (tmp_path / "train.csv").write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in column_problems(profile)["data.train_csv"]
    profile.data.train_csv = str(tmp_path / "missing.csv")  # the profile's own check says it
    assert column_problems(profile) == {}


def test_column_guide_follows_the_profile_help():
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(DataSection)}
    single = column_guide(DataSection())
    assert [key for key, _, _ in single] == ["index_column", "label_column", "text_column"]
    assert [needed for _, _, needed in single] == [True, False, True]
    assert single[0][1] == helps["index_column"].removeprefix("CSV column with ")
    paired = column_guide(DataSection(eyes="paired", label_column=""))
    assert [key for key, _, _ in paired][-2:] == ["left_text_column", "right_text_column"]
    assert paired[-1][1] == "the right-eye text"


def test_bad_rows_block_at_the_csv_key_unless_skipped(tmp_path):
    ragged = HEADER + "0,A,one, two\n1,B,fine\n"
    profile = _profile(tmp_path, ragged, HEADER + "0,A,x\n")
    problems = csv_problems(profile)
    assert list(problems) == ["data.train_csv"]
    assert "1 bad row(s): line 2: 4 fields" in problems["data.train_csv"]
    assert 'data.on_bad_row = "skip"' in problems["data.train_csv"]
    report = data_report(profile, tokens=False)
    assert not report.ok and report.at == problems
    profile.data.on_bad_row = "skip"
    assert csv_problems(profile) == {}
    profile = _profile(tmp_path, HEADER + "0,A,x\n", HEADER)  # no rows at all: still blocks
    assert "has a header and no rows" in csv_problems(profile)["data.test_csv"]
    profile = _profile(tmp_path, "idx,label,prompt\n0,A,x\n")  # the column first, at its key
    assert list(csv_problems(profile)) == ["data.index_column"]
    assert list(data_report(profile, tokens=False).at) == ["data.index_column"]


UNCHECKED = "data set org/misspelt-set not checked; it is checked when you convert or run --check"


def test_a_hub_data_set_offline_is_a_warning(demo_profile):
    from retclip_pipeline import profile as profiles

    profile = profiles.load(demo_profile)
    profile.hub.dataset = "org/misspelt-set"
    report = data_report(profile, tokens=False)
    said = f"hub.dataset: hub not reachable (HF_HUB_OFFLINE=1): {UNCHECKED} online"
    assert report.ok and report.warnings == [said]
    assert report.verdict() == f"ready to convert; {said}"


def test_an_unreachable_hub_is_probed_once_and_the_cache_read(demo_profile, monkeypatch):
    """No network (connections refused) without HF_HUB_OFFLINE: one probe, a warning that
    the misspelt id was not checked, and the client back online after the report."""
    from huggingface_hub import constants

    from retclip_pipeline import profile as profiles
    from retclip_pipeline.hub import access

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    asked = []
    monkeypatch.setattr(access, "check", lambda *a, **k: asked.append(a))  # never reached
    profile = profiles.load(demo_profile)
    profile.hub.dataset = "org/misspelt-set"
    report = data_report(profile, tokens=False)
    assert report.ok and len(report.warnings) == 1, report.warnings
    assert report.warnings[0].startswith("hub.dataset: hub not reachable (ConnectError: ")
    assert UNCHECKED in report.warnings[0] and asked == []
    assert constants.HF_HUB_OFFLINE is False
    kept, ragged = profile.data.train_csv, demo_profile.parent / "ragged.csv"
    ragged.write_text(HEADER + "0,A,one, two\n", encoding="utf-8")
    profile.data.train_csv = str(ragged)  # the CSV fails: the id still said unchecked
    report = data_report(profile, tokens=False)
    assert not report.ok and "1 bad row(s)" in report.verdict()
    assert len(report.warnings) == 1 and UNCHECKED in report.warnings[0]
    profile.data.train_csv = kept
    profile.hub.dataset = str(demo_profile.parent / "set")  # local, with the tiny tokenizer
    report = data_report(profile)
    assert report.ok and report.warnings == []  # nothing on the hub: no probe, no warning


def test_an_unknown_user_home_is_a_path_not_a_crash():
    profile = Profile()
    assert not profile.resolve("~no-such-user-rc/p.csv").exists()


def test_example_csv_is_shipped_and_reads(tmp_path):
    from retclip_pipeline.preflight.inspect import EXAMPLE_CSV

    table = read_prompts(EXAMPLE_CSV, DataSection(), None)
    assert 18 <= table.rows_read <= 24 and not table.skipped
    assert {row.label for row in table.rows} == {
        "Central Serous Chorioretinopathy [Color Fundus]",
        "Diabetic Retinopathy",
        "Disc Edema",
        "Glaucoma",
        "Healthy",
        "Macular Scar",
        "Myopia",
        "Pterygium",
        "Retinal Detachment",
        "Retinitis Pigmentosa",
    }
    assert sum("," in row.text for row in table.rows) >= 10
    copy = shutil.copy(EXAMPLE_CSV, tmp_path / "p.csv")
    profile = Profile()
    profile.data.train_csv = str(copy)
    assert column_problems(profile) == {}
