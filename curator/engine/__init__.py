"""Engines run an operation's pure per-task functions: locally on a process pool, or elsewhere."""
