"""retclip_tui: the Textual wizard over retclip_pipeline (its screens land with the TUI issue)."""
