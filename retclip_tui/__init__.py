"""retclip-tui: a Textual wizard over retclip_pipeline; it calls the core and starts the
pipeline as a detached process, never doing pipeline work itself."""
