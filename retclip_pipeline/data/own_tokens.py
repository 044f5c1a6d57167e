"""The prompts' token figures for a run's own text tower when its converted data is shared
(a sweep's variants): the shared conversion report measured the first variant's tokenizer,
so each variant with another tower or context length measures the converted texts again,
into tokens.json in its own folder (evaluation caveats read that one first)."""

from __future__ import annotations

import json
from typing import Any

from ..data.sampling import split_plan
from ..errors import describe
from ..layout import RunLayout
from ..profile import Profile


def converted_texts(layout: RunLayout, profile: Profile) -> list[str]:
    """Every text the conversion kept, in the (shared) data folder."""
    texts = []
    for split, _, _ in split_plan(profile):
        path = layout.texts_jsonl(split)
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts += [record.get(k) for k in ("text", "text_left", "text_right") if record.get(k)]
    return texts


def measure(profile: Profile, layout: RunLayout) -> dict[str, Any]:
    """The token fit (data/report.py token_fit) of the profile's text tower on the texts."""
    from ..model.sources import fetch_advice
    from ..model.tokenizer import load_fast_tokenizer, token_counts, vocab_language
    from .report import token_fit

    name = profile.model.text
    texts = converted_texts(layout, profile)
    try:
        tokenizer = load_fast_tokenizer(name)
    except Exception as exc:  # offline, unknown id: said in the file, the run goes on
        reason = f"{type(exc).__name__}: {describe(exc)}"
        measured = {"error": f"{reason[:200]}; {fetch_advice([name])}"}
        return token_fit(profile, [], texts, measured | {"vocab": vocab_language(name)})
    counts = [list(c) for c in token_counts(tokenizer, texts)]
    return token_fit(profile, counts, texts, {"vocab": vocab_language(name, tokenizer)})


def read(layout: RunLayout) -> dict[str, Any]:
    """The run's own token figures, or {} when it has none (its data is its own)."""
    try:
        data = json.loads(layout.own_tokens.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("tokens", {}) if isinstance(data, dict) else {}
