PY ?= .venv/bin/python

.PHONY: test lint format bench demo

test:
	$(PY) -m pytest

lint:
	$(PY) -m ruff format --check curator tests bench cli.py
	$(PY) -m ruff check curator tests bench cli.py
	$(PY) -m mypy

format:
	$(PY) -m ruff format curator tests bench cli.py
	$(PY) -m ruff check --fix curator tests bench cli.py

bench:
	$(PY) bench/ingest.py
	$(PY) bench/assemble.py
	$(PY) bench/dedup.py
	$(PY) bench/ledger.py

demo:
	$(PY) -m curator demo
