"""Evaluation: features of a checkpoint, retrieval, zero-shot, linear probe, figures, report."""
