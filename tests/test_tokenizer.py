from retclip_pipeline.model.tokenizer import load_fast_tokenizer, load_tokenizer, token_lengths

TEXTS = [
    "Colour fundus photograph showing “scattered microaneurysms”, consistent with retinopathy.",
    "A pterygium encroaching on the limbus; ÉTUDE 42 unknownword",
    "",
]


def test_light_tokenizer_counts_like_transformers():
    light = token_lengths(load_fast_tokenizer("tiny"), TEXTS)
    full = token_lengths(load_tokenizer("tiny"), TEXTS)
    assert light == full
    assert light[2] == 2  # [CLS] [SEP]
