"""The conversion report: what was read, written and skipped, label disagreements, prompt
lengths against the context length, and near-duplicate images across the split."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import describe
from ..profile import Profile

if TYPE_CHECKING:
    from .conversion import SplitResult
    from .prompts import PromptTable

EXAMPLES = 10


def _split_report(result: SplitResult) -> dict[str, Any]:
    kept = set(result.images)
    rows = [row for row in result.table.rows if row.index in kept]
    disagreements, examples = 0, []  # a count and the first few: not a list of every row
    for row in rows:
        dataset_label = result.images[row.index]["label"]
        if (
            row.label
            and dataset_label
            and row.label.strip().lower() != dataset_label.strip().lower()
        ):
            disagreements += 1
            if len(examples) < EXAMPLES:
                examples.append(
                    {
                        "line": row.line,
                        "index": row.index,
                        "csv": row.label,
                        "dataset": dataset_label,
                    }
                )
    distinct_in_csv = len({row.index for row in result.table.rows})
    return {
        "csv": str(result.table.path),
        "rows_read": result.table.rows_read,
        "rows_skipped": [{"line": line, "reason": reason} for line, reason in result.table.skipped],
        "distinct_images_in_csv": distinct_in_csv,
        "images_selected": len(result.selected),
        "images_written": len(result.images),
        "images_skipped": [{"index": i, "reason": r} for i, r in sorted(result.bad.items())],
        "pairs_written": len(rows),
        "images_with_several_texts": sum(
            1 for n in Counter(r.index for r in rows).values() if n > 1
        ),
        "texts_per_class": dict(sorted(Counter(row.label or "(none)" for row in rows).items())),
        "label_disagreements": {"count": disagreements, "examples": examples},
    }


def measure_tokens(text_tower: str, tables: dict[str, PromptTable]) -> dict[str, Any]:
    """(tokens, unknown tokens) of every text of each split's prompt table, by CSV line, and
    the vocabulary's language; or why the tokenizer could not be loaded."""
    from ..model.sources import fetch_advice
    from ..model.tokenizer import load_fast_tokenizer, token_counts, vocab_language

    try:
        tokenizer = load_fast_tokenizer(text_tower)
    except Exception as exc:  # offline, unknown id: the report says so, conversion goes on
        reason = f"{type(exc).__name__}: {describe(exc)}"
        return {
            "error": f"{reason[:200]}; {fetch_advice([text_tower])}",
            "vocab": vocab_language(text_tower),
        }
    measured: dict[str, Any] = {}
    for name, table in tables.items():
        texts, lines = [], []
        for row in table.rows:
            for text in (row.text, row.left_text, row.right_text):
                if text:
                    texts.append(text)
                    lines.append(row.line)
        by_line: dict[int, list[list[int]]] = defaultdict(list)
        for line, counted in zip(lines, token_counts(tokenizer, texts), strict=True):
            by_line[line].append(list(counted))
        measured[name] = dict(by_line)
    return {"by_line": measured, "vocab": vocab_language(text_tower, tokenizer)}


def token_fit(
    profile: Profile, counts: list[list[int]], texts: list[str], measured: dict[str, Any]
) -> dict[str, Any]:
    """How the text tower's tokenizer fits the prompts: lengths against the context length,
    the unknown-token rate, tokens a word, and warnings with what to do."""
    from ..model.tokenizer import ENGLISH_PRESETS, text_language

    name, context = profile.model.text, profile.model.context_length
    prompts_language = text_language(texts[:2000])
    head: dict[str, Any] = {
        "tokenizer": name,
        "context_length": context,
        "vocab_language": measured.get("vocab"),
        "prompt_language": prompts_language,
        "warnings": [],
    }
    english = ", ".join(f'"{p}"' for p in ENGLISH_PRESETS)
    if prompts_language == "en" and measured.get("vocab") == "zh":
        head["warnings"].append(
            f"the prompts are English but model.text = {name!r} has a Chinese vocabulary, "
            f"which splits English words into pieces: an English text tower fits them "
            f"(model.text = {english})"
        )
    if "error" in measured:
        return head | {"error": measured["error"]}
    lengths = np.array([c[0] for c in counts], dtype=int)
    unknown = int(sum(c[1] for c in counts))
    words = sum(len(re.findall(r"\w+", text)) for text in texts)
    truncated = int((lengths > context).sum())
    total_tokens = int(lengths.sum()) - 2 * lengths.size  # [CLS] and [SEP] are not text
    fit = head | {
        "prompts": int(lengths.size),
        "mean": round(float(lengths.mean()), 1) if lengths.size else 0.0,
        "p90": int(np.percentile(lengths, 90)) if lengths.size else 0,
        "max": int(lengths.max()) if lengths.size else 0,
        "truncated": truncated,
        "truncated_share": round(truncated / lengths.size, 4) if lengths.size else 0.0,
        "unknown_share": round(unknown / max(1, total_tokens), 4),
        "tokens_per_word": round(total_tokens / max(1, words), 2),
    }
    if fit["unknown_share"] > 0.01:
        fit["warnings"].append(
            f"{fit['unknown_share']:.1%} of the prompts' tokens are unknown to the "
            f"{name!r} vocabulary: the tower reads them as [UNK]"
        )
    if fit["truncated_share"] >= 0.1:
        fit["warnings"].append(
            f"{fit['truncated_share']:.0%} of the prompts are longer than model.context_length "
            f"= {context} tokens and are cut: raise it (up to the tower's positions, often 512)"
        )
    return fit


def fit_lines(fit: dict[str, Any]) -> list[str]:
    """The token fit in a few lines: figures first, then each warning."""
    if "error" in fit:
        out = [f"prompt lengths: not measured for {fit['tokenizer']!r}: {fit['error']}"]
    else:
        out = [
            f"prompt tokens ({fit['tokenizer']}): mean {fit['mean']}, p90 {fit['p90']}, max "
            f"{fit['max']}; {fit['truncated']} of {fit['prompts']} ({fit['truncated_share']:.0%}) "
            f"over the context length {fit['context_length']} and cut; "
            f"{fit['unknown_share']:.1%} unknown tokens, {fit['tokens_per_word']} tokens a word"
        ]
    return out + [f"warning: {w}" for w in fit["warnings"]]


def prompt_fit(
    profile: Profile,
    tables: dict[str, PromptTable],
    measured: dict[str, Any],
    kept: dict[str, set[int]] | None = None,
) -> dict[str, Any]:
    """The token fit over the rows of each split's table (only rows of `kept` images)."""
    counts: list[list[int]] = []
    texts: list[str] = []
    for name, table in tables.items():
        by_line = measured.get("by_line", {}).get(name, {})
        for row in table.rows:
            if kept is None or row.index in kept[name]:
                counts += by_line.get(row.line, [])
                texts.append(row.text)
    return token_fit(profile, counts, texts, measured)


# Near-duplicate search in blocks of test x train hashes: one block's distances take
# TEST_BLOCK * TRAIN_BLOCK * 11 bytes (XOR words, their bit counts, the uint16 sums): 46 MB.
TEST_BLOCK = 256
TRAIN_BLOCK = 16384


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each uint64, as uint8."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[values.view(np.uint8)].reshape(values.shape + (8,)).sum(-1, dtype=np.uint8)


def _hashes(result: SplitResult) -> tuple[np.ndarray, np.ndarray]:
    """Image ids and their hashes as rows of uint64 words (one row per distinct eye image),
    in id order; parsed in one go, not through a Python int per word."""
    ids, hexes = [], []
    for index, image in sorted(result.images.items()):
        for value in sorted(set(image["phash"])):
            ids.append(index)
            hexes.append(value)
    words = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8").astype(np.uint64)
    width = len(hexes[0]) // 16 if hexes else 4
    return np.array(ids, dtype=np.int64), words.reshape(len(ids), width)


def _distances(test: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Hamming distances of a block of test hashes to a block of train hashes, word by word:
    no test x train x words array."""
    total = np.zeros((len(test), len(train)), dtype=np.uint16)
    for word in range(test.shape[1]):
        total += _popcount(test[:, word, None] ^ train[None, :, word])
    return total


def nearest(test: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each test hash, the row of the nearest train hash (the first on ties) and its
    distance, in bounded blocks over both."""
    best = np.full(len(test), np.iinfo(np.uint16).max, dtype=np.uint16)
    where = np.zeros(len(test), dtype=np.int64)
    for t in range(0, len(test), TEST_BLOCK):
        block_best, block_where = best[t : t + TEST_BLOCK], where[t : t + TEST_BLOCK]  # views
        for r in range(0, len(train), TRAIN_BLOCK):
            distance = _distances(test[t : t + TEST_BLOCK], train[r : r + TRAIN_BLOCK])
            column = distance.argmin(axis=1)
            found = distance[np.arange(len(column)), column]
            better = found < block_best  # strictly: an earlier block keeps a tie, as argmin
            block_best[better] = found[better]
            block_where[better] = r + column[better]
    return where, best


def near_duplicates(train: SplitResult, test: SplitResult, bits: int) -> dict[str, Any]:
    """Test images whose perceptual hash is within `bits` of some train image's."""
    train_ids, train_hashes = _hashes(train)
    test_ids, test_hashes = _hashes(test)
    matches: dict[int, tuple[int, int]] = {}
    if train_hashes.size and test_hashes.size:
        where, best = nearest(test_hashes, train_hashes)
        for row in np.nonzero(best <= bits)[0]:
            test_id = int(test_ids[row])
            found = (int(train_ids[where[row]]), int(best[row]))
            if test_id not in matches or found[1] < matches[test_id][1]:
                matches[test_id] = found
    first = sorted(matches.items())[:EXAMPLES]
    return {
        "bits": bits,
        "test_images": len(test.images),
        "test_images_with_train_match": len(matches),
        "exact": sum(1 for _, d in matches.values() if d == 0),
        "examples": [{"test": t, "train": m, "distance": d} for t, (m, d) in first],
    }


def cross_class_duplicates(result: SplitResult) -> int:
    """Images of one split that share an identical hash with an image of another class."""
    label_of: dict[str, str | None] = {}  # hash -> its one label, None once it has two
    count: Counter[str] = Counter()
    for index, image in result.images.items():
        key = image["phash"][0]
        label = image["label"] or result.csv_labels.get(index) or ""
        label_of[key] = label if label_of.get(key, label) == label else None
        count[key] += 1
    return sum(n for key, n in count.items() if label_of[key] is None)


def build(
    profile: Profile, results: list[SplitResult], measured: dict[str, dict]
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "image_size": profile.data.image_size,
        "eyes": profile.data.eyes,
        "splits": {r.name: _split_report(r) for r in results},
        "tokens": prompt_fit(
            profile,
            {r.name: r.table for r in results},
            measured,
            {r.name: set(r.images) for r in results},
        ),
    }
    for result in results:
        report["splits"][result.name]["cross_class_identical_images"] = cross_class_duplicates(
            result
        )
    by_name = {r.name: r for r in results}
    if "train" in by_name and "test" in by_name:
        report["near_duplicates"] = near_duplicates(
            by_name["train"], by_name["test"], profile.data.near_duplicate_bits
        )
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers kept in state.json and shown in plans."""
    out: dict[str, Any] = {}
    for name, split in report["splits"].items():
        out[f"{name}_pairs"] = split["pairs_written"]
        out[f"{name}_images"] = split["images_written"]
    return out


def render(report: dict[str, Any]) -> str:
    lines = [f"Conversion report ({report['eyes']} eyes, {report['image_size']} px)"]
    for name, split in report["splits"].items():
        lines.append(
            f"  {name}: {split['rows_read']} rows read, {split['pairs_written']} pairs written on "
            f"{split['images_written']} images ({split['images_selected']} selected of "
            f"{split['distinct_images_in_csv']} in the CSV; "
            f"{split['images_with_several_texts']} with several texts)"
        )
        if split["rows_skipped"]:
            lines.append(
                f"    rows skipped: {len(split['rows_skipped'])}, e.g. line "
                f"{split['rows_skipped'][0]['line']}: {split['rows_skipped'][0]['reason']}"
            )
        if split["images_skipped"]:
            first = split["images_skipped"][0]
            lines.append(
                f"    images skipped: {len(split['images_skipped'])}, e.g. index "
                f"{first['index']}: {first['reason']}"
            )
        disagreements = split["label_disagreements"]
        if disagreements["count"]:
            first = disagreements["examples"][0]
            lines.append(
                f"    CSV label differs from the data set's on {disagreements['count']} rows, "
                f"e.g. line {first['line']}: {first['csv']!r} vs {first['dataset']!r}"
            )
        if split["cross_class_identical_images"]:
            lines.append(
                f"    {split['cross_class_identical_images']} images are identical to an "
                f"image of another class"
            )
        per_class = ", ".join(f"{k}: {v}" for k, v in split["texts_per_class"].items())
        lines.append(f"    texts per class: {per_class}")
    lines += [f"  {line}" for line in fit_lines(report["tokens"])]
    duplicates = report.get("near_duplicates")
    if duplicates:
        lines.append(
            f"  near duplicates: {duplicates['test_images_with_train_match']} of "
            f"{duplicates['test_images']} test images are within {duplicates['bits']} bits (of 256) of a "
            f"train image ({duplicates['exact']} identical hashes): test figures will be optimistic"
            if duplicates["test_images_with_train_match"]
            else "  near duplicates: no test image is close to a train image"
        )
    return "\n".join(lines) + "\n"
