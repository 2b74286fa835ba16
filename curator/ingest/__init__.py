"""Ingest: readers for every input format, the per-task pipeline (validate, hash, tag, stage) and the commit of a run; tag without a store."""
