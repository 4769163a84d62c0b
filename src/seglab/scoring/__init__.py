"""Losses and metrics: what training minimises and what every verb reports, on logits and class
indices with 255 ignored (one int64 confusion matrix)."""
