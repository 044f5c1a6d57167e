"""The RET-CLIP model: a shared vision tower for both eyes, a BERT-style text tower, the
patient/left/right heads (retclip.py), built from presets, hub ids or folders (build.py,
sources.py), its tokenizer, reference-layout weights, the export and the three losses.
It knows nothing of the pipeline."""
