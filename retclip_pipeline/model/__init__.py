"""RET-CLIP model pieces: tower presets and tokenizers (the model itself lands with training)."""
