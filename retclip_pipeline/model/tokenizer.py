"""Text tower presets and their tokenizers."""

from __future__ import annotations

import functools
from pathlib import Path

TINY_TOKENIZER_DIR = Path(__file__).parent / "tiny_tokenizer"

# Short names a profile may use for `model.text`; anything else is a hub id or a folder.
TEXT_PRESETS = {
    "chinese-roberta": "hfl/chinese-roberta-wwm-ext",
    "bert-base-uncased": "bert-base-uncased",
    "pubmedbert": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext",
    "biobert": "dmis-lab/biobert-base-cased-v1.1",
    "chinese-clip": "OFA-Sys/chinese-clip-vit-base-patch16",
    "tiny": str(TINY_TOKENIZER_DIR),
}


def text_source(name: str) -> str:
    return TEXT_PRESETS.get(name, name)


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str):
    """The tokenizer of a text tower preset, hub id or local folder."""
    from transformers import AutoTokenizer, BertTokenizerFast

    source = text_source(name)
    if source == str(TINY_TOKENIZER_DIR):
        # transformers 5 ignores BertTokenizerFast(vocab_file=...): load the folder instead.
        return BertTokenizerFast.from_pretrained(source)
    return AutoTokenizer.from_pretrained(source)


def preprocess_text(text: str) -> str:
    """As the reference does before tokenising: lower case, straight quotes."""
    return text.lower().replace("“", '"').replace("”", '"')


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    """Tokens per text with [CLS] and [SEP], before any truncation."""
    lengths: list[int] = []
    for start in range(0, len(texts), 1024):
        batch = [preprocess_text(t) for t in texts[start : start + 1024]]
        encoded = tokenizer(batch, add_special_tokens=True, truncation=False)["input_ids"]
        lengths += [len(ids) for ids in encoded]
    return lengths
