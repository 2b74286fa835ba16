"""The public facade: :class:`Store`, one delegating method per operation, and the functions that
create and open a store.

The work is done in the layers below: the store itself (:mod:`curator.store.base`), ingest
(:mod:`curator.ingest.commit`), near-duplicates (:mod:`curator.dedup.clusters`), inference
(:mod:`curator.infer.inference`), assembly (:mod:`curator.assembly.assemble`) and models and
lineage (:mod:`curator.lineage.models`). No operation imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from curator.assembly import assemble as _assembly
from curator.assembly import manifest as _manifest
from curator.dedup import clusters as _dedup
from curator.infer import inference as _infer
from curator.ingest import commit as _ingest
from curator.ingest.result import IngestResult, first_rejects
from curator.lineage import audit as _audit
from curator.lineage import models as _lineage
from curator.lineage import tree as _tree
from curator.store.base import Stats, StatsRow, StoreBase, create_store, new_run_id
from curator.tokens import counts as _tokens

if TYPE_CHECKING:
    import polars as pl

    from curator.assembly.policy import Policy
    from curator.assembly.pools import Assembly
    from curator.dedup.clusters import DedupResult
    from curator.engine.base import Engine
    from curator.infer.inference import InferResult
    from curator.lineage.models import Model
    from curator.lineage.tree import LineageNode
    from curator.tokens.counts import TokensResult

__all__ = [
    "IngestResult",
    "Manifest",
    "Stats",
    "StatsRow",
    "Store",
    "first_rejects",
    "init_store",
    "new_run_id",
    "open_store",
]


def init_store(path: str | os.PathLike[str], *, exist_ok: bool = False) -> Store:
    """Create a store at `path`: the directory layout and an empty catalog.

    Args:
        path: directory to create (it may exist if empty).
        exist_ok: return the existing store instead of failing when one is already there.

    Raises:
        StoreError: a store is already there (and not `exist_ok`), or the directory is not empty.

    >>> store = init_store(tmp_path / "store")  # doctest: +SKIP
    """
    return Store(create_store(path, exist_ok=exist_ok))


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    """Open an existing store; `path` defaults to env `CURATOR_STORE`.

    Raises:
        StoreError: no path given and no `CURATOR_STORE`, or no store at the path.
    """
    from curator.core.errors import StoreError

    if path is None:
        path = os.environ.get("CURATOR_STORE")
        if not path:
            raise StoreError(
                "no store given",
                "pass --store DIR or set CURATOR_STORE (Python: `curator.open_store(DIR)`); create one with `curator init DIR` (Python: `curator.init_store(DIR)`)",
            )
    return Store(path)


class Store(StoreBase):
    """An open store. Create one with :func:`init_store`, open one with :func:`open_store`.

    Catalog access and read-only SQL (:meth:`sql`, :meth:`sql_batches`, :meth:`export`,
    :meth:`stats`, :meth:`live_shards`) come from :class:`~curator.store.base.StoreBase`; every
    other method delegates to the operation named in its docstring.

    >>> store = open_store("data/store")  # doctest: +SKIP
    >>> store.ingest(["corpus.jsonl"], source="web-2021", origin="real")  # doctest: +SKIP
    >>> store.sql("SELECT origin, count(*) FROM samples GROUP BY 1")  # doctest: +SKIP
    """

    # -- ingest ----------------------------------------------------------------------------

    def ingest(
        self,
        inputs: Sequence[str | os.PathLike[str]],
        *,
        source: str,
        origin: str | None = None,
        generation: int | None = None,
        model: str | None = None,
        generated_by: str | None = None,
        confidence: float = 1.0,
        collected_at: datetime | date | None = None,
        collected_at_column: str | None = None,
        id_column: str | None = None,
        text_column: str = "text",
        image_column: str | None = None,
        parent_id_column: str | None = None,
        rename_columns: dict[str, str] | None = None,
        input_format: str = "auto",
        strict: bool = False,
        allow_empty: bool = False,
        jobs: int | None = None,
        shard_bytes: int | None = None,
        max_image_pixels: int = 89_478_485,
        batch_rows: int = 8192,
        max_record_bytes: int = 64 << 20,
        lock_timeout: float | None = None,
        progress: bool = False,
        engine: str | Engine | None = None,
        tokenizer: str | os.PathLike[str] | None = None,
    ) -> IngestResult:
        """Read inputs, tag every record with provenance and add them to the store; see
        :func:`curator.ingest.commit.ingest` for every argument.

        >>> store.ingest(["corpus.jsonl"], source="web-2021", origin="real")  # doctest: +SKIP
        IngestResult(run_id='…', status='committed', rows_read=1000, ingested=1000, …)
        """
        options = dict(locals())
        del options["self"], options["inputs"]
        return _ingest.ingest(self, inputs, **options)

    def tokens(
        self,
        tokenizer: str | os.PathLike[str],
        *,
        source: str | None = None,
        lock_timeout: float | None = None,
        progress: bool = False,
        engine: str | Engine | None = None,
    ) -> TokensResult:
        """Add `n_tokens` to the samples in the store (of `source`, if given), counted by a
        local ``tokenizer.json``; see :func:`curator.tokens.counts.tokens`.

        >>> store.tokens("tokenizer.json", source="web-2021")  # doctest: +SKIP
        """
        options = dict(locals())
        del options["self"], options["tokenizer"]
        return _tokens.tokens(self, tokenizer, **options)

    # -- assembly --------------------------------------------------------------------------

    def plan(
        self, policy: Policy | str | os.PathLike[str], *, lineage: str | None = None
    ) -> Assembly:
        """Plan an assembly without writing anything (``print(store.plan(p).describe())``);
        see :func:`curator.assembly.assemble.plan_only`."""
        return _assembly.plan_only(self, _policy(policy), lineage=lineage)

    def assemble(
        self,
        policy: Policy | str | os.PathLike[str],
        out: str | os.PathLike[str],
        *,
        lineage: str | None = None,
        name: str | None = None,
        lock_timeout: float | None = None,
        engine: str | Engine | None = None,
    ) -> Manifest:
        """Assemble a training set under `policy` into the new or empty directory `out`;
        see :func:`curator.assembly.assemble.assemble`.

        >>> manifest = store.assemble("gen-2.toml", "train/gen-2", lineage="main")  # doctest: +SKIP
        """
        return Manifest.of(
            _assembly.assemble(
                self,
                _policy(policy),
                out,
                lineage=lineage,
                name=name,
                lock_timeout=lock_timeout,
                engine=engine,
            ),
            self,
        )

    def manifests(self) -> list[dict[str, Any]]:
        """Every manifest of the store (id, name, lineage, sequence, rows …), by lineage."""
        return _manifest.manifests_of(self)

    def manifest(self, ident: str) -> Manifest:
        """A manifest by id, by name (the latest of that name) or by path."""
        return Manifest.of(_manifest.find_manifest(self, ident), self)

    def scan(self, columns: Sequence[str] | None = None) -> pl.LazyFrame:
        """A ``polars.LazyFrame`` over the live samples (the live shards the catalog lists);
        see :func:`curator.store.scan.scan_store`.

        >>> store.scan().group_by("origin", "generation").len().collect()  # doctest: +SKIP
        """
        from curator.store import scan

        return scan.scan_store(self, columns)

    # -- near-duplicates and inference -----------------------------------------------------

    def dedup(
        self,
        *,
        text: bool = True,
        images: bool = True,
        threshold: float = 0.8,
        num_perm: int = 128,
        shingling: str = "word:5",
        hamming: int = 8,
        image_hash: str = "phash",
        lock_timeout: float | None = None,
        progress: bool = False,
        engine: str | Engine | None = None,
    ) -> DedupResult:
        """Find near-duplicate clusters and record them in the catalog table ``duplicates``;
        images by the hash kind `image_hash` (``phash``, ``dhash``, ``whash``, ``average``,
        ``colorhash``, ``crop-resistant``). See :func:`curator.dedup.clusters.dedup`.

        >>> store.dedup(threshold=0.8)  # doctest: +SKIP
        >>> store.dedup(text=False, image_hash="dhash")  # doctest: +SKIP
        """
        options = dict(locals())
        del options["self"]
        return _dedup.dedup(self, **options)

    def infer(
        self,
        *,
        cutoff: date | datetime | None = None,
        time_prior_confidence: float = 0.6,
        detector: Any = None,
        detector_threshold: float = 0.9,
        apply: bool = True,
        lock_timeout: float | None = None,
        progress: bool = False,
        c2pa_trust_anchors: str | os.PathLike[str] | None = None,
        engine: str | Engine | None = None,
    ) -> InferResult:
        """Label samples of unknown origin from their signals, near-duplicates, a time prior
        (`cutoff`, default 2022-11-30) and an optional detector; ``apply=False`` changes
        nothing. See :func:`curator.infer.inference.infer`."""
        options = dict(locals())
        del options["self"]
        options["cutoff"] = cutoff or _infer.DEFAULT_CUTOFF
        return _infer.infer(self, **options)

    def contamination(self, source: str) -> dict[str, Any]:
        """How much of `source` near-duplicates known synthetic samples, by generation and model."""
        return _infer.contamination(self, source)

    # -- models and lineage -------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        *,
        trained_on: str | None = None,
        generation: int | None = None,
        notes: str | None = None,
        metrics: Mapping[str, float] | None = None,
        lock_timeout: float | None = None,
    ) -> Model:
        """Register the model `name`, trained on the manifest `trained_on` (or of a declared
        `generation`); see :func:`curator.lineage.models.register_model`.

        >>> store.register_model("ngram-1", trained_on="gen-1")  # doctest: +SKIP
        """
        options = dict(locals())
        del options["self"], options["name"]
        return _lineage.register_model(self, name, **options)

    def models(self) -> list[Model]:
        """Every registered model, oldest first."""
        return _lineage.list_models(self)

    def model(self, name: str) -> Model:
        """The registered model `name` (a :class:`ModelError` lists the registered ones)."""
        return _lineage.get_model(self, name)

    def lineage(self, ident: str, *, max_depth: int = 64) -> LineageNode:
        """Where a sample, model or manifest came from, as a tree (``.to_json()`` for JSON)."""
        return _tree.lineage_tree(self, ident, max_depth=max_depth)

    def lineage_report(self, lineage: str) -> dict[str, Any]:
        """The generation audit of `lineage`; see :func:`curator.lineage.audit.lineage_report`."""
        return _audit.lineage_report(self, lineage)


def _policy(policy: Policy | str | os.PathLike[str]) -> Policy:
    from curator.assembly.policy import Policy

    return policy if isinstance(policy, Policy) else Policy.from_toml(os.fspath(policy))


# -- exports: a set's provenance as Croissant, a dataset card, OpenLineage, the AI Act summary ---
# The export operations import the assembly manifest, so the assembly layer cannot hold these
# methods: they are here, on a facade subclass (what `curator.Manifest`, `Store.manifest()`,
# `Store.assemble()` and `Manifest.load()` give), and as module functions. `manifest` is a
# Manifest, a path to a set (or its manifest.json), or, with `store`, a manifest id or name.


@dataclass(repr=False)  # the base's short repr, not the whole manifest
class Manifest(_manifest.Manifest):
    """An assembled training set (see :class:`curator.assembly.manifest.Manifest`), with its
    exports and a polars scan. A manifest from :meth:`Store.manifest` or :meth:`Store.assemble`
    remembers its store, so its exports name the registered models; pass `store=` otherwise.

    >>> manifest = curator.Manifest.load("train/gen-2")  # doctest: +SKIP
    >>> manifest.to_croissant("train/gen-2/croissant.json")  # doctest: +SKIP
    >>> manifest.scan().filter(pl.col("origin") == "synthetic").collect()  # doctest: +SKIP
    """

    store: StoreBase | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, manifest: _manifest.Manifest, store: StoreBase | None = None) -> Manifest:
        """The facade of an assembly-layer manifest."""
        return cls(manifest.data, manifest.path, manifest.note, store)

    def _store(self, store: StoreBase | None) -> StoreBase | None:
        return store if store is not None else self.store

    def scan(
        self,
        columns: Sequence[str] | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
    ) -> pl.LazyFrame:
        """A ``polars.LazyFrame`` over the set's rows, from the files its manifest lists (in
        manifest order; token arrays are skipped); `storage_options` go to polars for a set on
        object storage. See :func:`curator.store.scan.scan_files`.

        >>> manifest.scan(["sample_id", "origin"]).collect()  # doctest: +SKIP
        """
        from curator.store import scan

        return scan.scan_files(
            self.output_locations(),
            columns=columns,
            storage_options=storage_options,
            what=f"manifest `{self.manifest_id}`",
        )

    def to_croissant(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        license: str | None = None,
        store: StoreBase | None = None,
    ) -> dict[str, Any]:
        """The set's Croissant 1.1 JSON-LD, written to `path` when given (files named relative
        to it); see :func:`to_croissant`."""
        if path is None:
            return to_croissant(self, license=license, store=self._store(store))
        from curator.export import croissant

        return croissant.write_croissant(self, path, license=license, store=self._store(store))

    def to_card(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        license: str | None = None,
        store: StoreBase | None = None,
    ) -> str:
        """The set's Hugging Face dataset card, written to `path` when given; see
        :func:`to_card`."""
        if path is None:
            return to_card(self, license=license, store=self._store(store))
        from curator.export import card

        return card.write_card(self, path, license=license, store=self._store(store))

    def to_openlineage(
        self, path: str | os.PathLike[str] | None = None, *, store: StoreBase | None = None
    ) -> Any:
        """The OpenLineage run event of the assembly that made the set, written to `path` as
        JSON when given; see :func:`to_openlineage`."""
        if path is None:
            return to_openlineage(self, store=self._store(store))
        from curator.export import openlineage

        return openlineage.write_openlineage(self, path, store=self._store(store))

    def to_training_summary(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        fmt: str | None = None,
        categories: Mapping[str, str] | None = None,
        store: StoreBase | None = None,
    ) -> dict[str, Any]:
        """A draft of Section 2 of the AI Act training-content summary for this set, written to
        `path` when given (`fmt` ``markdown`` or ``json``; default JSON for a ``.json`` file);
        see :func:`to_training_summary`."""
        if path is None:
            return to_training_summary(self, categories=categories, store=self._store(store))
        from curator.export import summary

        return summary.write_training_summary(
            [self], path, fmt=fmt, categories=categories, store=self._store(store)
        )


def to_croissant(
    manifest: _manifest.Manifest | str | os.PathLike[str],
    *,
    location: str | os.PathLike[str] | None = None,
    license: str | None = None,
    store: StoreBase | None = None,
) -> dict[str, Any]:
    """The set's Croissant 1.1 JSON-LD (RAI 1.0, per-record PROV-O); see
    :func:`curator.export.croissant.to_croissant`.

    >>> doc = curator.api.to_croissant("train/gen-2")  # doctest: +SKIP
    """
    from curator.export import croissant, target

    found = target.resolve_manifest(manifest, store)
    return croissant.to_croissant(found, location=location, license=license, store=store)


def to_card(
    manifest: _manifest.Manifest | str | os.PathLike[str],
    *,
    location: str | os.PathLike[str] | None = None,
    license: str | None = None,
    store: StoreBase | None = None,
) -> str:
    """The set's Hugging Face dataset card (Markdown with YAML); see
    :func:`curator.export.card.to_card`."""
    from curator.export import card, target

    found = target.resolve_manifest(manifest, store)
    return card.to_card(found, location=location, license=license, store=store)


def to_openlineage(
    manifest: _manifest.Manifest | str | os.PathLike[str], *, store: StoreBase | None = None
) -> Any:
    """The OpenLineage run event (an ``openlineage.client.event_v2.RunEvent``) of the assembly
    that made the set; see :func:`curator.export.openlineage.to_openlineage`."""
    from curator.export import openlineage, target

    return openlineage.to_openlineage(target.resolve_manifest(manifest, store), store=store)


def to_training_summary(
    manifest_or_lineage: _manifest.Manifest | str | os.PathLike[str],
    *,
    categories: Mapping[str, str] | None = None,
    store: StoreBase | None = None,
) -> dict[str, Any]:
    """A draft of Section 2 of the AI Act training-content summary for a set or, with `store`,
    every set of a lineage; see :func:`curator.export.summary.training_summary`."""
    from curator.export import summary, target

    manifests = target.resolve_manifests(manifest_or_lineage, store)
    return summary.training_summary(manifests, categories=categories, store=store)
