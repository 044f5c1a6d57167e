"""Text tower presets and their tokenizers."""

from __future__ import annotations

import functools
import json
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
    """The transformers tokenizer of a text tower preset, hub id or local folder."""
    from transformers import AutoTokenizer, BertTokenizerFast

    source = text_source(name)
    if source == str(TINY_TOKENIZER_DIR):
        # transformers 5 ignores BertTokenizerFast(vocab_file=...): load the folder instead.
        return BertTokenizerFast.from_pretrained(source)
    return AutoTokenizer.from_pretrained(source)


def _tokenizer_file(source: str, filename: str) -> Path | None:
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source, filename))
    except EntryNotFoundError:
        return None


@functools.lru_cache(maxsize=4)
def load_fast_tokenizer(name: str):
    """The same tokenizer as `load_tokenizer`, from the `tokenizers` library alone: for
    measuring prompt lengths without importing transformers (which imports torch: seconds
    and half a gigabyte in the conversion stage). Reads tokenizer.json, or a BERT vocab.txt
    with the lower-casing its tokenizer_config.json asks for."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    source = text_source(name)
    packed = _tokenizer_file(source, "tokenizer.json")
    if packed:
        return Tokenizer.from_file(str(packed))
    vocab = _tokenizer_file(source, "vocab.txt")
    if vocab is None:
        raise FileNotFoundError(f"{source} has neither tokenizer.json nor vocab.txt")
    config_path = _tokenizer_file(source, "tokenizer_config.json")
    config = json.loads(config_path.read_text()) if config_path else {}
    return BertWordPieceTokenizer(str(vocab), lowercase=config.get("do_lower_case", True))


def preprocess_text(text: str) -> str:
    """As the reference does before tokenising: lower case, straight quotes."""
    return text.lower().replace("“", '"').replace("”", '"')


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    """Tokens per text with [CLS] and [SEP], before any truncation; `tokenizer` is a
    `tokenizers` tokenizer (load_fast_tokenizer) or a transformers one (load_tokenizer)."""
    lengths: list[int] = []
    for start in range(0, len(texts), 1024):
        batch = [preprocess_text(t) for t in texts[start : start + 1024]]
        if hasattr(tokenizer, "encode_batch"):
            lengths += [len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=True)]
        else:
            encoded = tokenizer(batch, add_special_tokens=True, truncation=False)["input_ids"]
            lengths += [len(ids) for ids in encoded]
    return lengths


def encode_texts(tokenizer, texts: list[str], context_length: int):
    """Token ids and attention mask as tensors: [CLS] ids [SEP], truncated to the context
    length and padded with [PAD], lower-cased as the reference does."""
    batch = tokenizer(
        [preprocess_text(t) for t in texts],
        max_length=context_length,
        truncation=True,
        padding="max_length",
        return_tensors="pt",
    )
    return batch["input_ids"], batch["attention_mask"]
