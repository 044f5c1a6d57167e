"""The training stage: data, optimisation, checkpoints with exact resume."""
