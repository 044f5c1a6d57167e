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


# The language each preset's vocabulary was made for.
ENGLISH_PRESETS = ("bert-base-uncased", "pubmedbert", "biobert")
CHINESE_PRESETS = ("chinese-roberta", "chinese-clip")


def text_source(name: str) -> str:
    return TEXT_PRESETS.get(name, name)


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


def vocab_language(name: str, tokenizer=None) -> str | None:
    """ "zh" for a vocabulary made of Chinese characters (English words fall apart into
    letters), "en" for an English one, None when unknown. Read from the vocabulary itself
    when the tokenizer is at hand, else from the preset name."""
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        cjk = sum(1 for token in vocab if len(token) == 1 and _is_cjk(token))
        return "zh" if cjk > 0.3 * len(vocab) else "en"
    if name in CHINESE_PRESETS:
        return "zh"
    return "en" if name in ENGLISH_PRESETS else None


def text_language(texts: list[str]) -> str | None:
    """ "en" when the texts' letters are nearly all Latin, "zh" when mostly Chinese."""
    latin = cjk = 0
    for text in texts:
        for char in text:
            if char.isascii() and char.isalpha():
                latin += 1
            elif _is_cjk(char):
                cjk += 1
    if latin + cjk == 0:
        return None
    if latin >= 0.9 * (latin + cjk):
        return "en"
    return "zh" if cjk >= 0.5 * (latin + cjk) else None


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


def token_counts(tokenizer, texts: list[str]) -> list[tuple[int, int]]:
    """(tokens with [CLS] and [SEP] before any truncation, unknown tokens) per text;
    `tokenizer` is a `tokenizers` tokenizer (load_fast_tokenizer) or a transformers one
    (load_tokenizer)."""
    fast = hasattr(tokenizer, "encode_batch")
    unknown = tokenizer.token_to_id("[UNK]") if fast else tokenizer.unk_token_id
    counts: list[tuple[int, int]] = []
    for start in range(0, len(texts), 1024):
        batch = [preprocess_text(t) for t in texts[start : start + 1024]]
        if fast:
            encoded = [e.ids for e in tokenizer.encode_batch(batch, add_special_tokens=True)]
        else:
            encoded = tokenizer(batch, add_special_tokens=True, truncation=False)["input_ids"]
        counts += [(len(ids), ids.count(unknown) if unknown is not None else 0) for ids in encoded]
    return counts


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    """Tokens per text with [CLS] and [SEP], before any truncation."""
    return [length for length, _ in token_counts(tokenizer, texts)]


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
