"""Reconciling: one run (run.py), what a long-running reconciler remembers between runs
(history.py), and the reconciler that says after each run when to look again (reconciler.py)."""
