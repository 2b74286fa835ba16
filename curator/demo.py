"""The demo: a store built from real text every machine has, with synthetic and unknown samples.

Real text is the Python standard library's own documentation (module, class and function
docstrings, written by people). A word n-gram model trained on part of it writes the synthetic
samples. A "crawl" of unknown origin mixes held-out real paragraphs with generated ones.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import random
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from curator.errors import InputError
from curator.store import IngestResult, Store, init_store
from curator.textgen import NGramModel

DEMO_MARKER = ".curator-demo"

#: Modules whose docstrings are the demo's real text (pure-Python modules with long docstrings).
STDLIB_MODULES = (
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message",
    "enum", "fractions", "ftplib", "functools", "gettext", "glob", "gzip", "heapq", "hmac",
    "http.client", "http.cookies", "imaplib", "inspect", "ipaddress", "json", "locale", "logging",
    "mailbox", "optparse", "pathlib", "pickle", "pprint", "queue", "random", "shlex", "shutil",
    "smtplib", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "tokenize", "traceback", "typing", "unittest", "urllib.parse", "uuid",
    "warnings", "zipfile",
)  # fmt: skip


def stdlib_paragraphs(min_words: int = 12) -> list[str]:
    """Paragraphs of the standard library's docstrings, deduplicated, in a fixed order."""
    with warnings.catch_warnings():
        # Touching deprecated aliases (typing.io, …) while reading their docstrings warns.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _stdlib_paragraphs(min_words)


def _stdlib_paragraphs(min_words: int) -> list[str]:
    seen: set[str] = set()
    paragraphs: list[str] = []
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - a trimmed Python
            continue
        docs = [inspect.getdoc(module) or ""]
        for attr in sorted(vars(module)):
            if attr.startswith("_"):
                continue
            member = getattr(module, attr)
            if getattr(member, "__module__", None) != module.__name__:
                continue
            docs.append(inspect.getdoc(member) or "")
            if inspect.isclass(member):
                for method_name in sorted(vars(member)):
                    if not method_name.startswith("_"):
                        docs.append(inspect.getdoc(getattr(member, method_name, None)) or "")
        for doc in docs:
            for paragraph in doc.split("\n\n"):
                text = " ".join(paragraph.split())
                if len(text.split()) >= min_words and ">>>" not in text and text not in seen:
                    seen.add(text)
                    paragraphs.append(text)
    return paragraphs


@dataclass
class DemoResult:
    store: Store
    steps: list[tuple[str, IngestResult]]


def _write_jsonl(path: str, records: Sequence[Mapping[str, object]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def run_demo(directory: str, *, seed: int = 0, echo: Callable[[str], None] = print) -> DemoResult:
    """Build the demo store in `directory` and return it with the result of each ingest.

    `directory` must be new, empty, or an earlier demo (which is replaced).
    """
    root = os.path.abspath(directory)
    if os.path.exists(root) and os.listdir(root):
        if not os.path.exists(os.path.join(root, DEMO_MARKER)):
            raise InputError(
                f"`{root}` is not empty and is not an earlier demo",
                "pass a new directory: curator demo ./my-demo",
            )
        shutil.rmtree(root)
    os.makedirs(root)
    with open(os.path.join(root, DEMO_MARKER), "w", encoding="utf-8") as marker:
        marker.write(datetime.now(UTC).isoformat())
    inputs = os.path.join(root, "inputs")
    os.makedirs(inputs)
    store = init_store(os.path.join(root, "store"))

    rng = random.Random(seed)
    paragraphs = stdlib_paragraphs()
    rng.shuffle(paragraphs)
    cut = int(len(paragraphs) * 0.8)
    real, held_out = paragraphs[:cut], paragraphs[cut:]
    echo(f"Real text: {len(paragraphs):,} paragraphs of Python standard-library documentation.")

    _write_jsonl(os.path.join(inputs, "stdlib-docs.jsonl"), [{"text": t} for t in real])
    model = NGramModel(order=2).fit(real)
    generated = [model.generate(rng) for _ in range(len(real) // 2)]
    generated = [g for g in generated if len(g.split()) >= 5]
    _write_jsonl(
        os.path.join(inputs, "bigram-v1.jsonl"),
        [{"id": f"g{i:05d}", "text": t} for i, t in enumerate(generated)],
    )
    crawl = [{"text": t} for t in held_out] + [
        {"text": model.generate(rng)} for _ in range(len(held_out))
    ]
    rng.shuffle(crawl)
    _write_jsonl(os.path.join(inputs, "crawl.jsonl"), crawl)

    steps: list[tuple[str, IngestResult]] = []
    plan: list[tuple[str, dict[str, object]]] = [
        (
            "stdlib-docs.jsonl --source stdlib-docs --origin real --collected-at 2023-10-02",
            {
                "source": "stdlib-docs",
                "origin": "real",
                "collected_at": datetime(2023, 10, 2, tzinfo=UTC),
            },
        ),
        (
            "bigram-v1.jsonl --source bigram-v1 --origin synthetic --generation 1 --model bigram-v1 --id-column id",
            {
                "source": "bigram-v1",
                "origin": "synthetic",
                "generation": 1,
                "model": "bigram-v1",
                "id_column": "id",
            },
        ),
        ("crawl.jsonl --source crawl --origin unknown", {"source": "crawl", "origin": "unknown"}),
    ]
    for (command, kwargs), name in zip(
        plan, ("stdlib-docs.jsonl", "bigram-v1.jsonl", "crawl.jsonl"), strict=True
    ):
        result = store.ingest([os.path.join(inputs, name)], jobs=1, **kwargs)  # type: ignore[arg-type]
        echo(f"$ curator ingest inputs/{command}")
        echo(
            f"  {result.ingested:,} ingested, {result.skipped:,} skipped, {result.rejected:,} rejected"
        )
        steps.append((command, result))
    return DemoResult(store, steps)
