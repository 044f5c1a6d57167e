"""Keys a browser keeps for itself (Colab's terminal runs in one): bound there, a key never
reaches the wizard, so every action also has a key outside this set."""

BROWSER_KEYS = frozenset(("ctrl+n", "ctrl+t", "ctrl+w", "ctrl+tab", "f5", "f11", "f12", "ctrl+q"))
