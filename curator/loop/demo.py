"""The demo: a self-consuming loop that degrades without a fresh-real floor and holds with one.

Everything runs offline with curator's own operations on real data every machine has:

- **Text.** Real text is written by people and ships with Python: the standard library's
  docstrings and the language documentation in ``pydoc_data``. The generative model is a word
  bigram model (:class:`curator.loop.textgen.NGramModel`) trained on each assembled training set.
- **Digits** (with the ``demo`` extra, scikit-learn): the handwritten digits scikit-learn ships,
  as 8 × 8 PNG images; the generative model is a Gaussian mixture.

For each modality, two lineages run side by side for N generations. ``no-floor``: generation 1
trains on real data, every later generation only on the previous generation's output (the fully
synthetic loop). ``fresh-floor``: from generation 2 on, every policy has ``min_fresh_real_fraction``
= ``DemoConfig.floor`` (0.5), the rest being the previous generation's output. Each generation is assembled with
:meth:`Store.assemble`, its model is trained on the manifest's shards, evaluated against held-out
real data that never enters the store, registered with :meth:`Store.register_model` (with its
metrics) and its samples ingested with ``generated_by``. Then ``dedup``, ``infer`` and
``contamination`` run over a crawl of unknown origin, and ``curator report`` draws it all.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import os
import random
import shutil
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curator.assembly.assemble import assemble
from curator.assembly.policy import Policy
from curator.core.errors import InputError
from curator.dedup.clusters import dedup as find_near_duplicates
from curator.infer.inference import contamination, infer
from curator.ingest.commit import ingest
from curator.lineage.models import register_model
from curator.loop.demo_names import DIGITS_SOURCE, LOOPS, TEXT_SOURCE
from curator.loop.textgen import NGramModel, distinct_ngrams
from curator.store.base import StoreBase as Store
from curator.store.base import create_store

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


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs.

    Attributes:
        generations: generations of each loop (each: assemble, train, evaluate, register, ingest).
        text_rows: rows of every text training set and samples each text model writes.
        digit_rows: the same for digits.
        held_out: real text paragraphs kept out of the store, to evaluate every model on.
        floor: the fresh-real floor of the ``fresh-floor`` loops.
        digits: run the digits loops (``None``: when scikit-learn is installed).
        report: write the HTML report into ``DIR/report``.
        seed: every random choice follows from it.
    """

    generations: int = 6
    text_rows: int = 500
    digit_rows: int = 300
    held_out: int = 300
    floor: float = 0.5
    digits: bool | None = None
    report: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.generations < 2:
            raise InputError(
                f"`generations` is {self.generations}; the loop needs at least 2",
                "pass e.g. --generations 6",
            )
        if not 0 < self.floor < 1:
            raise InputError(
                f"`floor` is {self.floor}; a fresh-real floor is a fraction between 0 and 1",
                "pass e.g. --floor 0.5",
            )
        for name in ("text_rows", "digit_rows", "held_out"):
            if getattr(self, name) < 20:
                raise InputError(f"`{name}` is {getattr(self, name)}", "use at least 20")


@dataclass
class DemoResult:
    """What the demo made: the store, the metrics per generation and the report."""

    directory: str
    store: Store
    metrics: list[dict[str, Any]] = field(default_factory=list)
    contamination: dict[str, Any] = field(default_factory=dict)
    report: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "store": self.store.root,
            "metrics": self.metrics,
            "contamination": self.contamination,
            "report": self.report,
        }


# -- real text -------------------------------------------------------------------------------


def stdlib_paragraphs(min_words: int = 12) -> list[str]:
    """Paragraphs of the standard library's docstrings, deduplicated, in a fixed order.

    Read in a fresh interpreter: what a module holds depends on what else the process imported
    (libraries patch and extend standard modules), and the demo's data must not."""
    import subprocess
    import sys

    from curator.engine.local import worker_path

    code = (
        "import json, sys; from curator.loop.demo import _read_stdlib_paragraphs; "
        f"json.dump(_read_stdlib_paragraphs({int(min_words)}), sys.stdout)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(worker_path(sys.path, os.getcwd()))}
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    paragraphs: list[str] = json.loads(done.stdout)
    return paragraphs


def _read_stdlib_paragraphs(min_words: int) -> list[str]:
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


def real_text_corpus(min_words: int = 12) -> list[str]:
    """Text written by people that ships with Python: standard-library docstrings, then the
    prose paragraphs of the language documentation (``pydoc_data.topics``; indented code
    blocks left out). Deduplicated, in a fixed order."""
    paragraphs = stdlib_paragraphs(min_words)
    seen = set(paragraphs)
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - a Python built without pydoc_data
        return paragraphs
    for key in sorted(topics):
        for block in topics[key].split("\n\n"):
            if block.startswith((" ", "\t")):
                continue
            text = " ".join(block.split())
            if len(text.split()) >= min_words and text not in seen:
                seen.add(text)
                paragraphs.append(text)
    return paragraphs


# -- the demo --------------------------------------------------------------------------------


def _prepare_directory(directory: str | os.PathLike[str]) -> str:
    root = os.path.abspath(directory)
    if os.path.exists(root) and os.listdir(root):
        if not os.path.exists(os.path.join(root, DEMO_MARKER)):
            raise InputError(
                f"`{root}` is not empty and is not an earlier demo",
                "pass a new directory: curator demo ./my-demo",
            )
        shutil.rmtree(root)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, DEMO_MARKER), "w", encoding="utf-8") as marker:
        marker.write(datetime.now(UTC).isoformat())
    for sub in ("inputs", "policies", "train"):
        os.makedirs(os.path.join(root, sub))
    return root


def _write_jsonl(path: str, records: Sequence[Mapping[str, object]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def digits_available() -> bool:
    """Whether scikit-learn (the ``demo`` extra) is installed, for the digits loops."""
    try:
        importlib.import_module("sklearn")
    except ImportError:
        return False
    return True


def loop_policy(
    lineage: str,
    generation: int,
    *,
    rows: int,
    floor: float,
    real_source: str,
    previous_source: str | None,
    other_sources: Sequence[str],
    seed: int,
) -> str:
    """The TOML policy of one generation of a demo loop.

    Generation 1 draws only on `real_source`. Later generations draw on the previous
    generation's output (`previous_source`) and, with a `floor`, on at least that fraction of
    fresh real data (real data no earlier manifest of `lineage` used); the real source is capped
    at the floor, so the rest is synthetic. Every source in `other_sources` gets weight 0.
    """
    lines = [
        f"# {lineage}, generation {generation}: written by `curator demo`",
        f'name = "{lineage}-gen-{generation}"',
        f"seed = {seed}",
        "",
        "[target]",
        f"rows = {rows}",
        "",
        "[constraints]",
        f"min_fresh_real_fraction = {floor if generation > 1 else 0.0}",
        "",
        "[freshness]",
        f'lineage = "{lineage}"',
        "",
    ]
    weights: list[tuple[str, float, float]] = []
    if generation == 1 or floor > 0:
        weights.append((real_source, 1.0, floor if generation > 1 else 1.0))
    else:
        weights.append((real_source, 0.0, 1.0))
    if previous_source is not None:
        weights.append((previous_source, 1.0, 1.0))
    chosen = {name for name, _, _ in weights}
    weights += [(name, 0.0, 1.0) for name in sorted(other_sources) if name not in chosen]
    for name, weight, cap in weights:
        lines += ["[[sources]]", f'name = "{name}"', f"weight = {weight}"]
        if cap < 1:
            lines.append(f"max_fraction = {cap}")
        lines.append("")
    lines += [
        "[dedup]",
        "exact = false    # the loop trains on every sample the previous generation wrote",
        "",
        "[output]",
        f"shard_rows = {rows}",
    ]
    return "\n".join(lines) + "\n"


class _Loop(ABC):
    """One modality's loops: how to train, evaluate, sample and ingest its model."""

    modality: str
    real_source: str
    rows: int
    model_kind: str

    @abstractmethod
    def ingest_real(self, store: Store, root: str, echo: Callable[[str], None]) -> None:
        """Write the real data into ``DIR/inputs`` and ingest it as real."""

    @abstractmethod
    def train_and_sample(self, manifest_paths: list[Path], rng_seed: str) -> dict[str, Any]:
        """Train on the manifest's shards; return ``{"metrics": …, "samples": …}``."""

    @abstractmethod
    def ingest_samples(
        self, store: Store, root: str, model: str, samples: Any, source: str
    ) -> None:
        """Ingest the model's samples under it (``generated_by``)."""


class _TextLoop(_Loop):
    modality = "text"
    real_source = TEXT_SOURCE
    model_kind = "bigram"

    def __init__(self, config: DemoConfig):
        self.rows = config.text_rows
        paragraphs = real_text_corpus()
        random.Random(f"{config.seed}:text").shuffle(paragraphs)
        self.total = len(paragraphs)
        self.held_out = paragraphs[: config.held_out]
        self.real = paragraphs[config.held_out :]
        self.vocabulary = {w for p in paragraphs for w in p.split()}
        _check_real_supply(
            len(self.real), self.rows, config, "real paragraphs; this Python ships", "--text-rows"
        )

    def ingest_real(self, store: Store, root: str, echo: Callable[[str], None]) -> None:
        inputs = os.path.join(root, "inputs")
        _write_jsonl(os.path.join(inputs, "python-docs.jsonl"), [{"text": t} for t in self.real])
        _write_jsonl(os.path.join(inputs, "held-out.jsonl"), [{"text": t} for t in self.held_out])
        ingest(
            store,
            [os.path.join(inputs, "python-docs.jsonl")],
            source=TEXT_SOURCE,
            origin="real",
            collected_at=datetime(2023, 10, 2, tzinfo=UTC),
            jobs=1,
        )
        echo(
            f"text: {self.total:,} paragraphs of Python's own documentation, written by "
            f"people; {len(self.real):,} ingested as real (source {TEXT_SOURCE}), "
            f"{len(self.held_out):,} held out to evaluate every model"
        )

    def train_and_sample(self, manifest_paths: list[Path], rng_seed: str) -> dict[str, Any]:
        model = NGramModel(order=1).fit(_column(manifest_paths, "text"))
        rng = random.Random(rng_seed)
        samples: list[str] = []
        while len(samples) < self.rows:
            text = model.generate(rng)
            if text:  # an empty text would be rejected as empty content
                samples.append(text)
        metrics = {
            "perplexity": round(model.perplexity(self.held_out, self.vocabulary), 4),
            "vocabulary": distinct_ngrams(samples, 1),
            "distinct_bigrams": distinct_ngrams(samples, 2),
        }
        return {"metrics": metrics, "samples": samples}

    def ingest_samples(
        self, store: Store, root: str, model: str, samples: Any, source: str
    ) -> None:
        path = os.path.join(root, "inputs", f"{model}.jsonl")
        _write_jsonl(path, [{"text": t} for t in samples])
        ingest(store, [path], source=source, generated_by=model, jobs=1)


class _DigitsLoop(_Loop):
    modality = "digits"
    real_source = DIGITS_SOURCE
    model_kind = "gmm"

    def __init__(self, config: DemoConfig):
        import numpy as np
        from sklearn.datasets import load_digits

        self.rows = config.digit_rows
        self.seed = config.seed
        digits = load_digits()
        order = np.random.default_rng(config.seed).permutation(len(digits.data))
        held = order[: min(400, len(order) // 4)]
        real = order[len(held) :]
        self.total = len(digits.data)
        self.held_out = digits.data[held].astype(np.float64)
        self.pool = pool = digits.data[real].astype(np.float64)
        self.labels = [int(t) for t in digits.target[real]]
        _check_real_supply(
            len(pool), self.rows, config, "real digits; scikit-learn ships", "--digit-rows"
        )
        # Features for the Fréchet distance: the top 16 principal axes of the real pool.
        self.mean = pool.mean(axis=0)
        self.axes = np.linalg.svd(pool - self.mean, full_matrices=False)[2][:16]

    def ingest_real(self, store: Store, root: str, echo: Callable[[str], None]) -> None:
        path = os.path.join(root, "inputs", "digits.parquet")
        _write_digits(path, self.pool, self.labels)
        ingest(
            store,
            [path],
            source=DIGITS_SOURCE,
            origin="real",
            image_column="image",
            collected_at=datetime(1998, 7, 1, tzinfo=UTC),
            jobs=1,
        )
        echo(
            f"digits: {self.total:,} handwritten digits shipped with scikit-learn; "
            f"{len(self.pool):,} ingested as real 8x8 PNG images (source {DIGITS_SOURCE}), "
            f"{len(self.held_out):,} held out"
        )

    def features(self, pixels: Any) -> Any:
        return (pixels - self.mean) @ self.axes.T

    def train_and_sample(self, manifest_paths: list[Path], rng_seed: str) -> dict[str, Any]:
        import numpy as np
        from sklearn.mixture import GaussianMixture

        train = np.stack([_png_to_pixels(image) for image in _column(manifest_paths, "image")])
        seed = int(hashlib.sha256(rng_seed.encode()).hexdigest()[:8], 16)
        model = GaussianMixture(10, covariance_type="full", reg_covar=0.1, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on collapsed data
            model.fit(train)
            drawn, _ = model.sample(self.rows + 1000)
        drawn = np.clip(np.round(drawn), 0, 16)
        # sklearn draws component by component: shuffle so the first rows are a fair sample.
        drawn = drawn[np.random.default_rng(seed).permutation(len(drawn))]
        samples, evaluation = drawn[: self.rows], drawn[self.rows :]
        metrics = {
            "frechet_distance": round(
                frechet_distance(self.features(evaluation), self.features(self.held_out)), 4
            ),
            "pixel_variance": round(float(np.trace(np.cov(evaluation, rowvar=False))), 4),
        }
        return {"metrics": metrics, "samples": samples}

    def ingest_samples(
        self, store: Store, root: str, model: str, samples: Any, source: str
    ) -> None:
        path = os.path.join(root, "inputs", f"{model}.parquet")
        _write_digits(path, samples, None)
        ingest(store, [path], source=source, generated_by=model, image_column="image", jobs=1)


def _column(paths: Sequence[Path], column: str) -> list[Any]:
    """One column of a training set's shards, in order."""
    import pyarrow.parquet as pq

    return [
        value
        for path in paths
        for value in pq.read_table(path, columns=[column])[column].to_pylist()
    ]


def _check_real_supply(
    available: int, rows: int, config: DemoConfig, what: str, rows_option: str
) -> None:
    """The fresh-floor loop uses `rows` real samples in generation 1, then ⌈floor · rows⌉ fresh
    ones in every later generation: fail before anything runs when there are too few."""
    per_generation = math.ceil(config.floor * rows)
    needed = rows + (config.generations - 1) * per_generation
    if available < needed:
        most = 1 + max(available - rows, 0) // per_generation
        raise InputError(
            f"{config.generations} generations of the fresh-floor loop need {needed:,} {what} "
            f"{available:,} that are not held out",
            f"pass --generations {most} or fewer, or a smaller {rows_option} or --floor",
        )


def _pixels_to_png(pixels: Any) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    values = np.clip(np.round(np.asarray(pixels, dtype=np.float64) * 255 / 16), 0, 255)
    image = Image.fromarray(values.astype(np.uint8).reshape(8, 8), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _png_to_pixels(data: bytes) -> Any:
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        values = np.asarray(image.convert("L"), dtype=np.float64).reshape(-1)
    return values * 16 / 255


def _write_digits(path: str, pixels: Any, labels: list[int] | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {"image": pa.array([_pixels_to_png(p) for p in pixels], pa.binary())}
    if labels is not None:
        columns["label"] = pa.array(labels, pa.int8())
    pq.write_table(pa.table(columns), path)


def frechet_distance(a: Any, b: Any) -> float:
    """The Fréchet distance between Gaussians fitted to the rows of `a` and of `b`:
    ‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½) — FID's formula, on the features given."""
    import numpy as np
    from scipy import linalg

    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on nearly singular products
        root = linalg.sqrtm(cov_a @ cov_b)
    root = np.real(root)
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def _sources(store: Store) -> list[str]:
    """The store's sources, from the catalog (no scan of the shards)."""
    return [r["source"] for r in store.sql("SELECT DISTINCT source FROM composition").to_pylist()]


def _run_generation(
    store: Store,
    root: str,
    loop: _Loop,
    lineage: str,
    floor: float,
    generation: int,
    config: DemoConfig,
) -> dict[str, Any]:
    previous = f"{lineage}-{loop.model_kind}-{generation - 1}-out" if generation > 1 else None
    policy_text = loop_policy(
        lineage,
        generation,
        rows=loop.rows,
        floor=floor,
        real_source=loop.real_source,
        previous_source=previous,
        other_sources=_sources(store),
        seed=config.seed,
    )
    policy_path = os.path.join(root, "policies", f"{lineage}-gen-{generation}.toml")
    Path(policy_path).write_text(policy_text, encoding="utf-8")
    out = os.path.join(root, "train", lineage, f"gen-{generation}")
    manifest = assemble(
        store,
        Policy.from_toml(policy_path),
        out,
        lineage=lineage,
        name=f"{lineage}-gen-{generation}",
    )
    trained = loop.train_and_sample(
        manifest.output_paths(), f"{config.seed}:{lineage}:{generation}"
    )
    model_name = f"{lineage}-{loop.model_kind}-{generation}"
    model = register_model(
        store,
        model_name,
        trained_on=manifest.manifest_id,
        metrics=trained["metrics"],
        notes=f"{loop.model_kind} model trained by `curator demo`",
    )
    loop.ingest_samples(store, root, model_name, trained["samples"], f"{model_name}-out")
    return {
        "modality": loop.modality,
        "lineage": lineage,
        "generation": generation,
        "manifest": manifest.manifest_id,
        "model": model_name,
        "rows": manifest.rows,
        "fresh_real": model.fractions.get("fresh_real", 0.0),
        "synthetic": model.fractions.get("synthetic", 0.0),
        "deepest_generation": model.generation,
        **trained["metrics"],
    }


def _crawl(store: Store, root: str, words_from: list[str], seed: int) -> None:
    """A crawl of unknown origin: near-copies (upper case, and a word in sixty replaced, so the
    5-word shingles keep a Jaccard similarity near 0.85) of real paragraphs and of the no-floor
    loop's generated texts, to show dedup, infer and contamination."""
    rng = random.Random(f"{seed}:crawl")
    rows = store.sql(
        "SELECT text, source FROM samples WHERE text IS NOT NULL "
        "AND len(string_split(text, ' ')) >= 60 ORDER BY content_hash"
    ).to_pylist()
    real = [r["text"] for r in rows if r["source"] == TEXT_SOURCE]
    generated = [r["text"] for r in rows if r["source"].startswith("text-no-floor")]
    picked = rng.sample(real, min(60, len(real))) + rng.sample(generated, min(60, len(generated)))
    vocabulary = sorted({w for t in words_from for w in t.split()})
    crawl = []
    for text in picked:
        words = text.split()
        for i in rng.sample(range(len(words)), len(words) // 60):
            words[i] = rng.choice(vocabulary)
        crawl.append({"text": " ".join(words).upper()})
    rng.shuffle(crawl)
    path = os.path.join(root, "inputs", "crawl.jsonl")
    _write_jsonl(path, crawl)
    ingest(store, [path], source="crawl", origin="unknown", jobs=1)


def run_demo(
    directory: str | os.PathLike[str],
    config: DemoConfig | None = None,
    *,
    echo: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo in `directory` (new, empty, or an earlier demo, which is replaced).

    `echo` gets what the demo found (a line per generation, the crawl's numbers); `progress`
    (default: `echo`) a line as each step starts — the generations, dedup, infer, each section
    of the report — and the time taken at the end; dedup and infer also draw a bar on stderr
    when it is a terminal.

    Returns a :class:`DemoResult` with one row of metrics per (modality, lineage, generation),
    also written to ``DIR/demo.json``; the report is in ``DIR/report/index.html``.

    >>> result = run_demo("curator-demo", DemoConfig(generations=4))  # doctest: +SKIP
    >>> [r["vocabulary"] for r in result.metrics if r["lineage"] == "text-no-floor"]  # doctest: +SKIP
    [3370, 2701, 2277, 1992]
    """
    config = config or DemoConfig()
    step = progress or echo
    started = time.monotonic()
    digits = digits_available() if config.digits is None else config.digits
    if digits and not digits_available():
        raise InputError(
            "the digits loops need scikit-learn, which is not installed",
            "pip install 'curator[demo]', or run without --digits",
        )
    # The data first: too little real data for the loops fails before anything is written.
    loops: list[_Loop] = [_TextLoop(config)]
    if digits:
        loops.append(_DigitsLoop(config))
    root = _prepare_directory(directory)
    store = Store(create_store(os.path.join(root, "store")))
    result = DemoResult(directory=root, store=store)
    for loop in loops:
        loop.ingest_real(store, root, echo)
    if not digits:
        echo("digits: skipped (pip install 'curator[demo]' adds them)")
    echo("")
    for generation in range(1, config.generations + 1):
        step(
            f"generation {generation}/{config.generations}: assemble, train, evaluate, "
            f"register and ingest, for {len(loops) * len(LOOPS)} lineages"
        )
        for loop in loops:
            for suffix in LOOPS:
                lineage = f"{loop.modality}-{suffix}"
                floor = config.floor if suffix == "fresh-floor" else 0.0
                row = _run_generation(store, root, loop, lineage, floor, generation, config)
                result.metrics.append(row)
                echo(_progress_line(row))
    echo("")
    text_loop = loops[0]
    assert isinstance(text_loop, _TextLoop)
    step("crawl: ingesting texts of unknown origin")
    _crawl(store, root, text_loop.held_out, config.seed)
    texts = store.sql("SELECT count(*) AS n FROM samples WHERE text IS NOT NULL").to_pylist()[0]
    step(f"dedup: near-duplicates among the store's {texts['n']:,} texts (MinHash)")
    dedup = find_near_duplicates(store, images=False, progress=True)
    step("infer: labelling the crawl from its near-duplicates")
    inferred = infer(store, progress=True)
    result.contamination = contamination(store, "crawl")
    clusters = sum(m.clusters for m in dedup.methods)
    echo(
        f"crawl: {result.contamination['samples']} samples of unknown origin; dedup found "
        f"{clusters} near-duplicate clusters; infer relabelled {inferred.relabelled} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(inferred.by_evidence.items()))}); "
        f"{result.contamination['contaminated']} ({100 * result.contamination['fraction']:.0f}%) "
        "near-duplicate the no-floor loop's generated text"
    )
    if config.report:
        from curator.loop.report import build_report

        step(f"report: writing {os.path.join(root, 'report')}")
        report = build_report(store, os.path.join(root, "report"), echo=step)
        result.report = report.index
    with open(os.path.join(root, "demo.json"), "w", encoding="utf-8") as handle:
        json.dump({"config": asdict(config), **result.to_json()}, handle, indent=2)
        handle.write("\n")
    step(f"demo: done in {time.monotonic() - started:.0f} s")
    return result


def _progress_line(row: Mapping[str, Any]) -> str:
    measured = ", ".join(
        f"{k} {_number(v)}" for k, v in row.items() if k in METRIC_COLUMNS[row["modality"]]
    )
    return (
        f"{row['lineage']:<20} gen {row['generation']}: trained on {row['rows']} rows "
        f"({100 * row['fresh_real']:.0f}% fresh real, {100 * row['synthetic']:.0f}% synthetic); "
        f"{measured}"
    )


def _number(value: float) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


#: The metrics of each modality, in the order the demo's table shows them.
METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "text": ("vocabulary", "distinct_bigrams", "perplexity"),
    "digits": ("frechet_distance", "pixel_variance"),
}


def format_metrics(rows: Sequence[Mapping[str, Any]]) -> str:
    """The demo's table: per modality, one row per generation, each loop's metrics side by side."""
    from curator.core.output import render_table

    blocks = []
    for modality, metrics in METRIC_COLUMNS.items():
        mine = [r for r in rows if r["modality"] == modality]
        if not mine:
            continue
        lineages = [f"{modality}-{suffix}" for suffix in LOOPS]
        headers = ["gen"] + [
            f"{m} ({lineage.split('-', 1)[1]})" for m in metrics for lineage in lineages
        ]
        table_rows = []
        for generation in sorted({r["generation"] for r in mine}):
            by_lineage = {r["lineage"]: r for r in mine if r["generation"] == generation}
            cells: list[object] = [generation]
            for metric in metrics:
                for lineage in lineages:
                    value = by_lineage.get(lineage, {}).get(metric)
                    cells.append("-" if value is None else _number(value))
            table_rows.append(cells)
        blocks.append(f"{modality}:\n" + render_table(headers, table_rows))
    return "\n\n".join(blocks)
