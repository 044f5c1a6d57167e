from collections import Counter

import pytest

from retclip_pipeline.data.prompts import read_prompts, stratified_sample
from retclip_pipeline.errors import UserError
from retclip_pipeline.profile import DataSection

from .conftest import FIXTURES


def test_real_excerpt_keeps_every_text_of_an_image():
    table = read_prompts(FIXTURES / "retclip_prompts_excerpt.csv", DataSection(), None)
    groups = table.by_index()
    assert table.rows_read == len(table.rows) == 34
    assert sum(len(rows) > 1 for rows in groups.values()) == 2  # indices with two prompts
    assert len({row.label for row in table.rows}) == 10


def test_odir_excerpt_reads_as_paired():
    data = DataSection(
        eyes="paired",
        index_column="patient_id",
        label_column="",
        text_column="prompt_patient",
        left_text_column="prompt_left",
        right_text_column="prompt_right",
    )
    table = read_prompts(FIXTURES / "odir_prompts_excerpt.csv", data, None)
    assert len(table.rows) == 8
    assert table.rows[0].left_text.startswith("The left fundus")


def _csv(tmp_path, body):
    path = tmp_path / "p.csv"
    path.write_text("dataset_index,label,prompt\n" + body, encoding="utf-8")
    return path


def test_bad_rows_stop_with_one_line_naming_them(tmp_path):
    path = _csv(tmp_path, "0,A,fine\nx,A,bad index\n7,A,out of range\n1,A,\n")
    with pytest.raises(UserError) as caught:
        read_prompts(path, DataSection(), split_size=5)
    message = str(caught.value)
    assert "\n" not in message
    assert "3 bad row(s)" in message
    assert "line 3: dataset_index 'x' is not an integer" in message
    assert "line 4: dataset_index 7 is outside the split (0..4)" in message
    assert "line 5: empty prompt" in message
    assert 'data.on_bad_row = "skip"' in message


def test_bad_rows_skipped_and_reported_on_request(tmp_path):
    path = _csv(tmp_path, "0,A,fine\nx,A,bad index\n1,B,also fine\n")
    table = read_prompts(path, DataSection(on_bad_row="skip"), split_size=5)
    assert [row.index for row in table.rows] == [0, 1]
    assert table.skipped == [(3, "dataset_index 'x' is not an integer")]


RAGGED = [
    # (case, rows after the header, the bad row's line, its reason)
    ("too many fields", "0,A,fine\n1,B,cut, here\n", 3, "4 fields, the header has 3: an unquoted"),
    ("too few fields", "0,A,fine\n1,B\n", 3, "2 field(s), the header has 3: fields missing"),
    (
        "unclosed quote",
        '0,A,"opens\n1,B,swallowed\n2,C,"closes"\n3,D,fine\n',
        2,
        "a quote opens on this line and is not closed, so lines 3-4 became part of this row",
    ),
    (
        "unclosed quote at the end",
        '0,A,fine\n1,B,"opens\n2,C,x\n',
        3,
        "a quote opens on this line and is not closed, so line 4 became",
    ),
    (
        "text after a closing quote",
        '0,A,fine\n1,B,"the cup" is large\n2,C,x\n',
        3,
        "a quoted part is followed by more text in the same field",
    ),
    (
        "unclosed quote on the last line",
        '0,A,fine\n1,B,"opens\n',
        3,
        "a quote opens on this line and is not closed: close the quote",
    ),
    ("underscore in the index", "0,A,fine\n1_4,B,x\n", 3, "dataset_index '1_4' is not an integer"),
    ("exponent in the index", "0,A,fine\n1e2,B,x\n", 3, "dataset_index '1e2' is not an integer"),
    ("arabic digit in the index", "0,A,fine\n\u0661,B,x\n", 3, "dataset_index '\u0661' is not"),
    ("sign in the index", "0,A,fine\n+1,B,x\n", 3, "dataset_index '+1' is not an integer"),
]


@pytest.mark.parametrize("case,body,line,reason", RAGGED, ids=[c[0] for c in RAGGED])
def test_malformed_rows_are_named_by_line_or_skipped(tmp_path, case, body, line, reason):
    path = _csv(tmp_path, body)
    with pytest.raises(UserError) as caught:
        read_prompts(path, DataSection(), None)
    assert f"line {line}: {reason}" in str(caught.value)
    assert "\n" not in str(caught.value)
    table = read_prompts(path, DataSection(on_bad_row="skip"), None)
    assert [where for where, _ in table.skipped] == [line]
    assert reason in table.skipped[0][1]
    assert all("\n" not in row.text for row in table.rows)  # nothing swallowed is kept


def test_quoted_commas_quotes_and_line_breaks_are_prompts(tmp_path):
    path = _csv(
        tmp_path,
        '0,A,"a, b ""c"""\n\n1,B,"findings:\ndisc pale"\n2,C,x\n3,D,the "cup" is large\n',
    )
    table = read_prompts(path, DataSection(), None)
    assert [(row.line, row.text) for row in table.rows] == [
        (2, 'a, b "c"'),
        (4, "findings:\ndisc pale"),
        (6, "x"),
        (7, 'the "cup" is large'),  # a quote inside an unquoted field is the prompt's
    ]


def test_a_repeated_needed_column_is_an_error_even_when_skipping(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("dataset_index,prompt,label,prompt\n0,x,A,y\n")
    with pytest.raises(UserError, match=r"p.csv line 1: column 'prompt' appears 2 times"):
        read_prompts(path, DataSection(on_bad_row="skip"), None)
    path.write_text("dataset_index,label,prompt,note,note\n0,A,x,n,m\n")  # not a needed one
    assert read_prompts(path, DataSection(), None).rows[0].text == "x"


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "p.csv is empty"),
        (b"\xef\xbb\xbf\n\n", "p.csv is empty"),
        (b"dataset_index,label,prompt\n", "p.csv has a header and no rows"),
        (b"dataset_index,label,prompt\n0,A,ok\n1,A,caf\xe9\n", "p.csv line 3 is not UTF-8"),
        (None, "p.csv is a folder"),
    ],
)
def test_unreadable_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "p.csv"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        read_prompts(path, DataSection(on_bad_row="skip"), None)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_preview_rows_have_the_header_width(tmp_path):
    from retclip_pipeline.preflight.inspect import guess_columns, preview

    path = _csv(tmp_path, "0,A,fine\n1,B,cut, here\n2\n")
    header, rows = preview(path)
    assert rows == [["0", "A", "fine"], ["1", "B", "cut"], ["2", "", ""]]
    assert guess_columns(path)["index_column"] == "dataset_index"


def test_missing_column_names_the_key_to_set(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("idx,label,prompt\n0,A,x\n")
    with pytest.raises(UserError, match="has no column 'dataset_index'.*set data.index_column"):
        read_prompts(path, DataSection(), None)


def test_stratified_sample_is_proportional_seeded_and_covers_classes():
    labels = {i: "big" for i in range(900)} | {900 + i: "small" for i in range(20)} | {999: "tiny"}
    first = stratified_sample(labels, 100, seed=0)
    assert first == stratified_sample(labels, 100, seed=0)
    assert first != stratified_sample(labels, 100, seed=1)
    assert len(first) == 100 and first == sorted(first)
    counts = Counter(labels[i] for i in first)
    assert counts["tiny"] == 1 and counts["small"] == 2 and counts["big"] == 97


def test_stratified_sample_takes_all_when_asked_for_more():
    labels = {i: "a" for i in range(5)}
    assert stratified_sample(labels, 10, seed=0) == [0, 1, 2, 3, 4]


def test_smoke_runs_keep_the_class_shares_in_consecutive_indices():
    labels = {i: ("a" if i < 600 else "b") for i in range(1000)}
    runs = stratified_sample(labels, 50, seed=3, runs=True)
    shares = {c: sum(1 for i in runs if labels[i] == c) for c in "ab"}
    assert shares == {
        c: sum(1 for i in stratified_sample(labels, 50, 3) if labels[i] == c) for c in "ab"
    }
    for c in "ab":
        mine = [i for i in runs if labels[i] == c]
        assert mine == list(range(mine[0], mine[0] + len(mine)))
    assert runs == stratified_sample(labels, 50, seed=3, runs=True)
    assert runs != stratified_sample(labels, 50, seed=4, runs=True)


def test_a_byte_order_mark_and_crlf_line_ends_read_as_plain_lines(tmp_path):
    # Excel writes both: the header's first name is not "\ufeffdataset_index", no prompt ends
    # in "\r", a quoted prompt keeps its inner line break, and a bad row keeps its number.
    path = tmp_path / "p.csv"
    body = 'dataset_index,label,prompt\r\n0,A,fine\r\n1,B,"two\r\nlines"\r\n2,C,cut, here\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    table = read_prompts(path, DataSection(on_bad_row="skip"), None)
    assert [(row.line, row.index, row.text) for row in table.rows] == [
        (2, 0, "fine"),
        (3, 1, "two\r\nlines"),
    ]
    assert [line for line, _ in table.skipped] == [5]


def test_an_unclosed_quote_swallowing_rows_is_named_with_join_by_key(tmp_path):
    # With join = key a row starts with an id, not an integer: a swallowed line is one that
    # starts with an id shaped as the others ("k2" as "k1"); a prompt's own second line with
    # commas ("OD, OS normal, ...") is not.
    path = tmp_path / "p.csv"
    body = 'k1,A,"opens\nk2,B,x\nk3,C,y"\nk4,D,"od:\nOD, OS normal, cup 0.3"\nk5,E,z\n'
    path.write_text("patient,label,prompt\n" + body, encoding="utf-8")
    data = DataSection(join="key", key_column="patient", on_bad_row="skip")
    table = read_prompts(path, data, None)
    assert [line for line, _ in table.skipped] == [2]
    assert "lines 3-4 became part of this row" in table.skipped[0][1]
    assert [(row.key, row.text) for row in table.rows] == [
        ("k4", "od:\nOD, OS normal, cup 0.3"),
        ("k5", "z"),
    ]
