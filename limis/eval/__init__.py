"""Evaluation: spacing-aware segmentation metrics (accuracy runners build on these)."""
