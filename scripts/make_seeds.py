"""Regenerate seeds/ (the embedded demo data sets) and the tiny model's tokenizer vocabulary.

python scripts/make_seeds.py
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from retclip_pipeline.data import demo
from retclip_pipeline.model.tokenizer import TINY_TOKENIZER_DIR

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def build_tiny_tokenizer(csv_paths: list[Path]) -> None:
    """A small lower-cased WordPiece vocabulary from the demo prompts, built offline and the
    same every time: the specials, every character (alone and as a ##piece), every word."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer, splitter = BertNormalizer(lowercase=True), BertPreTokenizer()
    words: set[str] = set()
    for path in csv_paths:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for key, text in row.items():
                    if key.startswith("prompt"):
                        normalized = normalizer.normalize_str(text)
                        words.update(w for w, _ in splitter.pre_tokenize_str(normalized))
    chars = sorted({c for word in words for c in word})
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = special + chars + [f"##{c}" for c in chars] + sorted(words - set(chars))
    TINY_TOKENIZER_DIR.mkdir(parents=True, exist_ok=True)
    (TINY_TOKENIZER_DIR / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (TINY_TOKENIZER_DIR / "tokenizer_config.json").write_text(
        '{"do_lower_case": true, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}\n'
    )


def main() -> None:
    for name in ("demo", "demo_paired"):
        shutil.rmtree(SEEDS / name, ignore_errors=True)
    demo.write_single_eye(SEEDS / "demo")
    demo.write_paired(SEEDS / "demo_paired")
    build_tiny_tokenizer(sorted(SEEDS.glob("demo*/prompts_*.csv")))
    size = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
    print(f"seeds/ written: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
