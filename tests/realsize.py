"""Stand-ins for what a real user points the shipped profiles at, built locally:

- real-size towers with random weights, saved with `save_pretrained`: a CLIP ViT-B/16 vision
  model, and BERT-base text models with a Chinese-style vocabulary (21,128 entries, like
  `hfl/chinese-roberta-wwm-ext`: English falls apart into letters) or an English one
  (30,522 entries, like `bert-base-uncased`);
- prompt CSVs with the real ones' shape and quirks (12,989 train and 3,253 test rows, long
  English sentences with commas and quotes, indices repeated and missing, empty prompts at
  lines 211, 660, 1125 and 2071), written from the committed excerpt;
- a data set in the hub set's layout (parquet shards with an `image` column and a ClassLabel
  `label`, rows grouped by class) with the real split sizes and small images.

Nothing here downloads anything; `build_*` functions take a folder and are cached by the
tests' session fixtures.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
# Rows per class of Peacein/color-fundus-eye (train, test), in its alphabetical class order:
# 12,989 and 3,253 in all.
CLASS_ROWS = {
    "Central Serous Chorioretinopathy [Color Fundus]": (489, 122),
    "Diabetic Retinopathy": (2785, 689),
    "Disc Edema": (616, 153),
    "Glaucoma": (2328, 576),
    "Healthy": (2068, 536),
    "Macular Scar": (1533, 388),
    "Myopia": (1810, 451),
    "Pterygium": (82, 21),
    "Retinal Detachment": (607, 150),
    "Retinitis Pigmentosa": (671, 167),
}
EMPTY_PROMPT_LINES = (211, 660, 1125, 2071)  # of the real train CSV
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _tokenizer_files(folder: Path, vocab: list[str], lower: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = {"do_lower_case": lower, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def chinese_vocab() -> list[str]:
    """bert-base-chinese's layout: [PAD], 99 unused, [UNK] [CLS] [SEP] [MASK], punctuation,
    digits, Latin letters and their ## forms, a few hundred common English pieces, then CJK
    characters up to 21,128 entries."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]"]
    vocab.append("[MASK]")
    ascii_pieces = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    vocab += ascii_pieces + [f"##{c}" for c in ascii_pieces if c.isalnum()]
    common = {}
    for row in excerpt_rows():
        for word in re.findall(r"[a-z]+", row["prompt"].lower()):
            common[word] = common.get(word, 0) + 1
    vocab += [w for w, _ in sorted(common.items(), key=lambda kv: -kv[1])[:300] if len(w) > 1]
    vocab += ["##s", "##ed", "##ing", "##al", "##ion", "##ar", "##ic"]
    code = 0x4E00
    while len(vocab) < 21128:
        vocab.append(chr(code))
        code += 1
    return vocab


def english_vocab() -> list[str]:
    """A lower-cased WordPiece vocabulary of the excerpt's words, padded to 30,522 entries."""
    words: set[str] = set()
    for row in excerpt_rows():
        words |= set(re.findall(r"[a-z]+|[0-9]+|[^\sa-z0-9]", row["prompt"].lower()))
    chars = sorted({c for w in words for c in w})
    vocab = SPECIAL + chars + [f"##{c}" for c in chars if c.isalnum()]
    vocab += sorted(words - set(vocab))
    vocab += [f"[unused{i}]" for i in range(30522 - len(vocab))]
    return vocab


BASE = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}
BASE["num_attention_heads"] = 12
SMALL = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2}
SMALL["num_attention_heads"] = 2


def build_vision(folder: Path, shape: dict | None = None) -> Path:
    """CLIP ViT-B/16 at 224 px (86 M parameters; `shape` SMALL for a quick stand-in),
    random weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(image_size=224, patch_size=16, **(shape or BASE))
    CLIPVisionModel(config).save_pretrained(folder)
    return folder


def build_text(folder: Path, vocab: list[str], shape: dict | None = None) -> Path:
    """BERT-base (768 wide, 12 layers, 512 positions; `shape` SMALL for a quick stand-in),
    random weights, with its tokenizer."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(vocab), pad_token_id=0, **(shape or BASE))
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    _tokenizer_files(folder, vocab)
    return folder


def build_tokenizer(folder: Path, vocab: list[str]) -> Path:
    """A tokenizer folder alone (with a BERT-base config and no weights)."""
    from transformers import BertConfig

    BertConfig(vocab_size=len(vocab)).save_pretrained(folder)
    _tokenizer_files(folder, vocab)
    return folder


def excerpt_rows() -> list[dict[str, str]]:
    with open(FIXTURES / "retclip_prompts_excerpt.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _sentences() -> list[str]:
    found = []
    for row in excerpt_rows():
        found += [s.strip() for s in re.split(r"(?<=\.)\s+", row["prompt"]) if s.strip()]
    return found


def write_prompt_csvs(folder: Path, seed: int = 0) -> dict[str, Path]:
    """train.csv and test.csv shaped like the real ones (see the module docstring)."""
    rng = random.Random(seed)
    sentences = _sentences()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for column, split in enumerate(("train", "test")):
        indices: list[tuple[int, str]] = []
        start = 0
        for label, rows in CLASS_ROWS.items():
            indices += [(start + i, label) for i in range(rows[column])]
            start += rows[column]
        if split == "train":  # 135 indices twice (two texts), 135 never: the real quirk
            missing = set(rng.sample(range(len(indices)), 135))
            doubled = rng.sample([i for i in range(len(indices)) if i not in missing], 135)
            rows_out = []
            for i, entry in enumerate(indices):
                if i in missing:
                    continue
                rows_out.append(entry)
                if i in doubled:
                    rows_out.append(entry)
            while len(rows_out) < len(indices):
                rows_out.append(rows_out[-1])
            indices = rows_out[: len(indices)]
        path = folder / f"retclip_prompts_{'full' if split == 'train' else 'test'}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["dataset_index", "label", "prompt"])
            for line, (index, label) in enumerate(indices, start=2):
                picked = rng.sample(sentences, rng.randint(1, 2))
                prompt = (f'{label}, "{picked[0]}" ' + " ".join(picked[1:])).strip()
                if split == "train" and line in EMPTY_PROMPT_LINES:
                    prompt = ""
                writer.writerow([index, label, prompt])
        paths[split] = path
    return paths


def write_hub_layout_set(folder: Path, image_side: int = 48, distinct: int = 4) -> Path:
    """data/{split}-0000k-of-0000n.parquet with the real split sizes, as push_to_hub lays a
    set out; `distinct` JPEGs per class (4:3, `image_side` high), repeated (the real set
    repeats images too)."""
    from retclip_pipeline.data import demo

    from .hubstand import parquet_shards

    names = list(CLASS_ROWS)
    rng = random.Random(1)
    pictures = {}
    for label in names:
        for k in range(distinct):
            out = io.BytesIO()
            image = demo.fundus_image(label, rng, (image_side * 4 // 3, image_side))
            image.convert("RGB").save(out, "JPEG", quality=90)
            pictures[label, k] = out.getvalue()
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for column, (split, shards) in enumerate((("train", 2), ("test", 1))):
        labels = [k for k, name in enumerate(names) for _ in range(CLASS_ROWS[name][column])]
        images = [pictures[names[label], i % distinct] for i, label in enumerate(labels)]
        for path, blob in parquet_shards(split, images, labels, names, shards).items():
            (folder / path).write_bytes(blob)
    return folder
