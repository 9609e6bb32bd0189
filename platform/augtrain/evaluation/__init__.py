"""Evaluation: classification metrics and scoring on a collected test split, in-process."""
