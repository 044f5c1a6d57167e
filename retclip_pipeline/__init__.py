"""retclip_pipeline: the headless RET-CLIP pipeline (convert, LMDB, train, evaluate).

This package never imports Textual; heavy libraries (torch, transformers, datasets) are
imported inside the functions that need them so that the CLI starts at once.
"""

__version__ = "0.1.0"
