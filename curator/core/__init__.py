"""The bottom layer: the provenance schema, errors, content hashing, declared provenance and small shared helpers. Imports nothing else of curator."""
