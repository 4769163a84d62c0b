"""The verbs: train, evaluate, predict, export and bench, each a Python function the command
line calls (and the public API re-exports)."""
