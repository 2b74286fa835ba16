"""Models, generation depth and lineage: the self-consuming loop, closed.

A model is registered against the manifest it was trained on. Its generation is the deepest
generation among that manifest's samples (0 when it saw only real data), and the samples it makes
are generation + 1 (:meth:`Store.ingest` with ``generated_by``). A model trained elsewhere is
registered with its generation declared.

The catalog holds ``models`` and the view ``lineage_edges`` (sample → manifest → model → sample,
and sample → derived sample). :func:`lineage_tree` walks them upstream from a sample, a model or a
manifest; :func:`lineage_report` audits every manifest of a lineage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from curator.core.errors import CuratorError
from curator.core.schema import MAX_GENERATION
from curator.core.version import __version__
from curator.store.catalog import sql_literal, store_path

if TYPE_CHECKING:
    import duckdb

    from curator.api import Store
    from curator.assembly.manifest import Manifest

#: Model names: like source names, plus ``/`` and ``:`` (``org/model:tag``).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-/:]{0,127}$"


class ModelError(CuratorError):
    """A model that cannot be registered or is not registered."""


@dataclass(frozen=True)
class Model:
    """A registered generator.

    Attributes:
        name: its name; samples it made carry it in their ``model`` column.
        generation: the deepest generation it was trained on; its samples are ``generation + 1``.
        declared: the generation was declared at registration, not computed from a manifest.
        trained_on: the manifest it was trained on (``None`` for a model trained elsewhere).
        lineage: that manifest's lineage.
        fractions: the share of its training data (in ``unit``) that was ``real``,
            ``fresh_real``, ``synthetic`` and ``unknown``; empty without a manifest.
        synthetic_by_generation: the synthetic share by generation (``{"1": 0.25}``).
        metrics: what the model scored when it was evaluated (``{"perplexity": 41.2}``),
            recorded at registration; ``curator report`` plots them per generation.
    """

    name: str
    generation: int
    declared: bool
    trained_on: str | None
    lineage: str | None
    registered_at: datetime
    notes: str | None = None
    unit: str | None = None
    training_rows: int | None = None
    training_units: int | None = None
    fractions: dict[str, float] = field(default_factory=dict)
    synthetic_by_generation: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["registered_at"] = self.registered_at.isoformat(timespec="seconds")
        return data


def _composition_fractions(overall: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(real, fresh_real, used_real, synthetic, unknown) and synthetic by generation, as fractions
    of a manifest's units."""
    total = overall.get("units") or 0

    def share(units: int) -> float:
        return units / total if total else 0.0

    by_origin = overall.get("by_origin", {})
    by_freshness = overall.get("by_freshness", {})
    fractions = {
        "real": share(by_origin.get("real", {}).get("units", 0)),
        "fresh_real": share(by_freshness.get("fresh_real", {}).get("units", 0)),
        "used_real": share(by_freshness.get("used_real", {}).get("units", 0)),
        "synthetic": share(by_origin.get("synthetic", {}).get("units", 0)),
        "unknown": share(by_origin.get("unknown", {}).get("units", 0)),
    }
    by_generation = {
        key: share(value["units"])
        for key, value in sorted(
            overall.get("by_generation", {}).items(),
            key=lambda kv: int(kv[0]) if kv[0].isdigit() else 1 << 30,
        )
        if key.isdigit() and key != "0"
    }
    return fractions, by_generation


def deepest_generation(overall: dict[str, Any]) -> int | None:
    """The deepest known generation in a manifest's composition (``None``: only unknown)."""
    known = [
        int(k) for k, v in overall.get("by_generation", {}).items() if k.isdigit() and v["rows"]
    ]
    return max(known) if known else None


def _row_to_model(row: dict[str, Any]) -> Model:
    return Model(
        name=row["name"],
        generation=int(row["generation"]),
        declared=bool(row["declared"]),
        trained_on=row["trained_on"],
        lineage=row["lineage"],
        registered_at=row["registered_at"],
        notes=row["notes"],
        unit=row["unit"],
        training_rows=row["training_rows"],
        training_units=row["training_units"],
        fractions={
            key: row[f"{key}_fraction"]
            for key in ("real", "fresh_real", "synthetic", "unknown")
            if row[f"{key}_fraction"] is not None
        },
        synthetic_by_generation=_json_dict(row.get("synthetic_by_generation")),
        metrics=_json_dict(row.get("metrics")),
    )


def _json_dict(value: Any) -> dict[str, float]:
    import json

    if value is None:
        return {}
    return dict(json.loads(value)) if isinstance(value, str) else dict(value)


def _has_models_table(store: Store) -> bool:
    with store.connect() as con:
        return bool(
            con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'models'"
            ).fetchall()[0][0]
        )


def list_models(store: Store) -> list[Model]:
    """Every registered model, oldest first."""
    ensure_current(store)
    if not _has_models_table(store):
        return []
    rows = store.sql("SELECT * FROM models ORDER BY registered_at, name").to_pylist()
    return [_row_to_model(row) for row in rows]


def get_model(store: Store, name: str) -> Model:
    """The model `name`; a :class:`ModelError` listing the registered ones if there is none."""
    models = list_models(store)
    for model in models:
        if model.name == name:
            return model
    known = ", ".join(m.name for m in models)
    raise ModelError(
        f"no model `{name}` is registered in store `{store.root}`"
        + (f"; registered: {known}" if known else "; no model is registered yet"),
        f"register it first: curator model register {name} --trained-on MANIFEST "
        "(or --generation N for a model trained elsewhere)",
    )


def _models_upstream(store: Store, manifest_id: str) -> dict[str, list[str]]:
    """Every model whose output reached `manifest_id`, directly or through the manifests their
    upstream models were trained on, each with the path that shows it (manifest, model, …)."""
    paths: dict[str, list[str]] = {}
    frontier: list[tuple[str, list[str]]] = [(manifest_id, [manifest_id])]
    seen_manifests = {manifest_id}
    with store.connect() as con:
        while frontier:
            current, path = frontier.pop()
            for (model,) in con.execute(
                "SELECT DISTINCT model FROM usage WHERE manifest_id = ? AND model IS NOT NULL ORDER BY 1",
                [current],
            ).fetchall():
                if model in paths:
                    continue
                paths[model] = [*path, model]
                trained = con.execute(
                    "SELECT trained_on FROM models WHERE name = ?", [model]
                ).fetchall()
                if trained and trained[0][0] and trained[0][0] not in seen_manifests:
                    seen_manifests.add(trained[0][0])
                    frontier.append((trained[0][0], [*path, model, trained[0][0]]))
    return paths


def register_model(
    store: Store,
    name: str,
    *,
    trained_on: str | None = None,
    generation: int | None = None,
    notes: str | None = None,
    metrics: Mapping[str, float] | None = None,
    lock_timeout: float | None = None,
) -> Model:
    """Register the model `name`, trained on the manifest `trained_on` (an id, a name or a
    path to a manifest.json of this store), or trained elsewhere with `generation` declared.
    `metrics` are what the model scored when it was evaluated (finite numbers by name).

    With a manifest, the generation is the deepest generation among its samples; a declared
    generation as well must not be shallower. Raises :class:`ModelError` for a taken name, a
    missing manifest, or a cycle (the manifest holds output of the model itself, directly or
    through models trained on it)."""
    from curator.store import catalog
    from curator.store.locking import write_lock

    if not isinstance(name, str) or not re.fullmatch(MODEL_NAME_PATTERN, name):
        raise ModelError(
            f"{name!r} is not a valid model name",
            "use letters, digits, '.', '_', '-', '/' and ':' (at most 128), e.g. gpt-small-v2",
        )
    if trained_on is None and generation is None:
        raise ModelError(
            f"model `{name}` needs the manifest it was trained on, or its generation",
            "pass --trained-on MANIFEST, or --generation N for a model trained outside curator",
        )
    if generation is not None and (isinstance(generation, bool) or not isinstance(generation, int)):
        raise ModelError(
            f"generation {generation!r} is not a whole number", "pass e.g. --generation 1"
        )
    if generation is not None and not 0 <= generation < MAX_GENERATION:
        raise ModelError(
            f"generation {generation} is out of range",
            f"a model's generation is between 0 and {MAX_GENERATION - 1}",
        )
    checked_metrics = _check_metrics(metrics or {})
    with write_lock(store.root, "model register", lock_timeout):
        with store.connect(read_only=False) as rw:
            catalog.ensure(rw)
        _upgrade_usage(store)
        _check_name_is_free(store, name)
        existing = [m for m in list_models(store) if m.name == name]
        if existing:
            m = existing[0]
            raise ModelError(
                f"model `{name}` is already registered (generation {m.generation}"
                + (f", trained on manifest {m.trained_on})" if m.trained_on else ", declared)"),
                "models are immutable, since their samples' generations follow from them: "
                f"register the new one under another name, e.g. {name}-v2",
            )
        manifest: Manifest | None = None
        fractions: dict[str, float] = {}
        by_generation: dict[str, float] = {}
        computed: int | None = None
        if trained_on is not None:
            manifest = _manifest_of_store(store, trained_on)
            overall = manifest.data["composition"]["overall"]
            fractions, by_generation = _composition_fractions(overall)
            computed = _deepest_used_generation(store, manifest.manifest_id, overall)
            upstream = _models_upstream(store, manifest.manifest_id)
            if name in upstream:
                chain = " ← ".join(upstream[name][::-1])
                raise ModelError(
                    f"cycle: manifest {manifest.manifest_id} contains samples generated by "
                    f"`{name}` itself ({chain}), so `{name}` cannot have been trained on it",
                    "check --trained-on; samples labelled with this model name came from "
                    "another generator, so relabel them or register this model under another name",
                )
            if computed is None and generation is None:
                raise ModelError(
                    f"manifest {manifest.manifest_id} holds no sample of known generation "
                    "(all its samples are of unknown origin)",
                    "declare the generation as well: --generation N",
                )
            if generation is not None and computed is not None and generation < computed:
                raise ModelError(
                    f"declared generation {generation} is shallower than the deepest generation "
                    f"({computed}) in manifest {manifest.manifest_id}",
                    f"drop --generation (it is computed as {computed}) or declare at least {computed}",
                )
        final = generation if generation is not None else int(computed or 0)
        if final >= MAX_GENERATION:
            raise ModelError(
                f"model `{name}` would be generation {final}, and its samples generation "
                f"{final + 1}, beyond the maximum of {MAX_GENERATION}",
                "a chain this deep is almost certainly mislabelled: check the manifest's samples",
            )
        model = Model(
            name=name,
            generation=final,
            declared=generation is not None,
            trained_on=manifest.manifest_id if manifest else None,
            lineage=manifest.lineage if manifest else None,
            registered_at=datetime.now(UTC),
            notes=notes,
            unit=manifest.data["policy"]["target"]["unit"] if manifest else None,
            training_rows=manifest.rows if manifest else None,
            training_units=manifest.data["composition"]["overall"]["units"] if manifest else None,
            fractions={k: v for k, v in fractions.items() if k != "used_real"},
            synthetic_by_generation=by_generation,
            metrics=checked_metrics,
        )
        with store.connect(read_only=False) as rw:
            rw.execute(
                "INSERT INTO models (name, generation, declared, trained_on, lineage, registered_at, notes, unit, "
                "training_rows, training_units, real_fraction, fresh_real_fraction, synthetic_fraction, "
                "unknown_fraction, synthetic_by_generation, curator_version, metrics) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    model.name, model.generation, model.declared, model.trained_on, model.lineage,
                    model.registered_at, model.notes, model.unit, model.training_rows,
                    model.training_units, fractions.get("real"), fractions.get("fresh_real"),
                    fractions.get("synthetic"), fractions.get("unknown"),
                    _dumps(by_generation) if manifest else None, __version__,
                    _dumps(checked_metrics) if checked_metrics else None,
                ],
            )  # fmt: skip
    return model


METRIC_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$"


def _check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """Metric names and values as recorded: names like ``perplexity`` or ``fid.digits``, finite
    numbers; sorted by name."""
    import math

    checked: dict[str, float] = {}
    for key in sorted(metrics):
        value = metrics[key]
        if not isinstance(key, str) or not re.fullmatch(METRIC_NAME_PATTERN, key):
            raise ModelError(
                f"{key!r} is not a valid metric name",
                "use a letter, then letters, digits, '_', '.' or '-' (at most 64), e.g. perplexity",
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ModelError(
                f"metric `{key}` is {value!r}, not a finite number",
                f"pass a number, e.g. --metric {key}=41.2",
            )
        checked[key] = float(value)
    return checked


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=False)


def _manifest_of_store(store: Store, ident: str) -> Manifest:
    """A manifest of this store by id, name or path to a manifest.json; read from the store's
    own copy. Several matches (two manifests of one name, or a name and a path that differ) are
    an error that lists them: a model's generation cannot be changed once registered."""
    import os

    from curator.assembly.manifest import MANIFEST_FILE, Manifest

    rows = store.sql(
        "SELECT manifest_id, name, lineage, sequence, manifest_path FROM manifests"
    ).to_pylist()
    matches = {r["manifest_id"]: r for r in rows if ident == r["manifest_id"]}
    if not matches:
        matches = {r["manifest_id"]: r for r in rows if ident == r["name"]}
        path = ident if not os.path.isdir(ident) else os.path.join(ident, MANIFEST_FILE)
        if os.path.isfile(path):
            try:
                at_path = Manifest.load(path).manifest_id
            except CuratorError:
                at_path = None
            by_id = {r["manifest_id"]: r for r in rows}
            if at_path is not None and at_path not in by_id:
                raise ModelError(
                    f"`{ident}` is manifest {at_path}, which is not a manifest of store `{store.root}`",
                    "register the model in the store the manifest was assembled from (--store)",
                )
            if at_path is not None:
                matches[at_path] = by_id[at_path]
    if not matches:
        raise ModelError(
            f"no manifest `{ident}` in store `{store.root}` to register the model against",
            "list them with `curator manifest list`; a model trained outside curator is "
            "registered with --generation N instead",
        )
    if len(matches) > 1:
        listed = "; ".join(
            f"{r['manifest_id']} (lineage {r['lineage']} #{r['sequence']})"
            for r in sorted(matches.values(), key=lambda r: (r["lineage"], r["sequence"]))
        )
        raise ModelError(
            f"`{ident}` matches {len(matches)} manifests: {listed}",
            "pass the manifest id instead",
        )
    (row,) = matches.values()
    return Manifest.load(store_path(store.root, row["manifest_path"], "manifest"))


def _deepest_used_generation(store: Store, manifest_id: str, overall: dict[str, Any]) -> int | None:
    """The deepest generation among the samples a manifest used, whatever pool they counted in
    (a synthetic sample below `min_origin_confidence` counted as unknown still has its depth)."""
    with store.connect() as con:
        rows = con.execute(
            "SELECT max(generation), count(*) FILTER (WHERE sample_id IS NULL) FROM usage WHERE manifest_id = ?",
            [manifest_id],
        ).fetchall()
    deepest, untracked = rows[0]
    from_usage = None if deepest is None else int(deepest)
    from_composition = deepest_generation(overall)
    if untracked:  # usage rows from before generations were recorded
        return from_composition
    candidates = [g for g in (from_usage, from_composition) if g is not None]
    return max(candidates) if candidates else None


def _check_name_is_free(store: Store, name: str) -> None:
    """A model may not share its name with a manifest or a sample (`lineage show` takes all)."""
    clash = store.sql(
        "SELECT manifest_id FROM manifests WHERE manifest_id = "
        + sql_literal(name)
        + " OR name = "
        + sql_literal(name)
    ).to_pylist()
    if clash:
        raise ModelError(
            f"`{name}` is already the name of manifest {clash[0]['manifest_id']}",
            "give the model another name, e.g. " + f"{name}-model",
        )
    if store.sql(
        "SELECT 1 FROM samples WHERE sample_id = " + sql_literal(name) + " LIMIT 1"
    ).num_rows:
        raise ModelError(
            f"`{name}` is already a sample id", f"give the model another name, e.g. {name}-model"
        )


def _needs_upgrade(store: Store) -> bool:
    with store.connect() as con:
        tables = {
            row[0]
            for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        if "models" not in tables or "lineage_edges" not in tables:
            return True
        columns = {
            row[0]
            for row in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'usage'"
            ).fetchall()
        }
        if "sample_id" not in columns:
            return True
        return bool(_stale_manifests(con, store.root))


def _stale_manifests(con: duckdb.DuckDBPyConnection, root: str) -> list[tuple[str, str]]:
    """Manifests whose usage rows predate generations, with the selection file to fill them."""
    import os

    stale = []
    for (manifest_id,) in con.execute(
        "SELECT DISTINCT manifest_id FROM usage WHERE sample_id IS NULL ORDER BY 1"
    ).fetchall():
        selection = os.path.join(
            store_path(root, f"manifests/{manifest_id}", "manifest"), "selection.parquet"
        )
        if os.path.exists(selection):
            stale.append((manifest_id, selection))
    return stale


def _upgrade_usage(store: Store) -> None:
    """Under the write lock: add what a catalog from before generations lacks, and fill the
    usage ledger's sample, source, generation and model from each manifest's selection file: a
    new usage file per manifest replaces the manifest's old one, in one transaction."""
    import os
    import shutil
    import tempfile

    from curator.store import catalog, ledgers

    with store.connect(read_only=False) as rw:
        catalog.ensure(rw)
        stale = _stale_manifests(rw, store.root)
    if not stale:
        return
    staging = os.path.join(store.root, ".staging")
    os.makedirs(staging, exist_ok=True)
    work = tempfile.mkdtemp(prefix=ledgers.MIGRATION_PREFIX, dir=staging)
    try:
        import duckdb

        staged = []
        with duckdb.connect() as mem:
            for manifest_id, selection in stale:
                columns = {
                    row[0]
                    for row in mem.execute(
                        "DESCRIBE SELECT * FROM read_parquet(?)", [selection]
                    ).fetchall()
                }
                model = "model" if "model" in columns else "NULL::VARCHAR"
                reader = mem.sql(
                    "SELECT ? AS manifest_id, content_hash, CASE WHEN category IN ('fresh_real', 'used_real') THEN 'real' ELSE category END AS origin, "
                    f"category = 'fresh_real' AS fresh, sample_id, source, generation, {model} AS model FROM read_parquet(?)",
                    params=[manifest_id, selection],
                ).to_arrow_reader()
                staged.append(
                    ledgers.write_ledger(
                        work, "usage", reader, scope=manifest_id, run_id=f"upgraded-{manifest_id}"
                    )
                )
        ledgers.commit_ledgers(store.root, work, staged, lambda: store.connect(read_only=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_current(store: Store, lock_timeout: float | None = None) -> None:
    """Bring a catalog from before models and lineage up to date (once; a no-op after)."""
    from curator.store.locking import write_lock

    if _needs_upgrade(store):
        with write_lock(store.root, "upgrade catalog", lock_timeout):
            _upgrade_usage(store)


# -- lineage ----------------------------------------------------------------------------------


@dataclass
class LineageNode:
    """One node of a lineage tree; `parents` are where it came from."""

    kind: str  # sample | model | manifest | source
    id: str
    label: str
    details: dict[str, Any] = field(default_factory=dict)
    parents: list[LineageNode] = field(default_factory=list)
    repeated: bool = False  # shown in full elsewhere in the tree
    truncated: bool = False  # has parents beyond the depth limit

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "id": self.id, "label": self.label}
        data.update(self.details)
        if self.repeated:
            data["repeated"] = True
        if self.truncated:
            data["truncated"] = True
        data["parents"] = [p.to_json() for p in self.parents]
        return data


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _sample_rows(store: Store, sample_id: str) -> list[dict[str, Any]]:
    return store.sql(
        "SELECT sample_id, origin, generation, source, model, parent_id, origin_evidence, "
        "origin_confidence, content_hash FROM samples WHERE sample_id = " + sql_literal(sample_id)
    ).to_pylist()


class _Walker:
    def __init__(self, store: Store, max_depth: int) -> None:
        self.store = store
        self.max_depth = max_depth
        self.seen: set[tuple[str, str]] = set()
        self.models = {m.name: m for m in list_models(store)}

    def _visit(self, kind: str, ident: str) -> bool:
        key = (kind, ident)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def sample(self, row: dict[str, Any], depth: int) -> LineageNode:
        generation = row["generation"]
        label = (
            f"sample {row['sample_id']}: {row['origin']}"
            + (f", generation {generation}" if generation is not None else "")
            + f", source {row['source']} ({row['origin_evidence']}, confidence {row['origin_confidence']:.2f})"
        )
        node = LineageNode(
            "sample",
            row["sample_id"],
            label,
            {
                "origin": row["origin"],
                "generation": generation,
                "source": row["source"],
                "model": row["model"],
                "parent_id": row["parent_id"],
                "evidence": row["origin_evidence"],
                "confidence": row["origin_confidence"],
                "content_hash": row["content_hash"],
            },
        )
        if not self._visit("sample", row["sample_id"]):
            node.repeated = True
            return node
        if depth >= self.max_depth:
            node.truncated = bool(row["model"] or row["parent_id"])
            return node
        if row["model"]:
            node.parents.append(self.model(row["model"], depth + 1))
        if row["parent_id"]:
            parents = _sample_rows(self.store, row["parent_id"])
            if parents:
                node.parents.append(self.sample(parents[0], depth + 1))
            else:
                node.parents.append(
                    LineageNode(
                        "sample",
                        row["parent_id"],
                        f"derived from sample {row['parent_id']} (not in the store)",
                        {"missing": True},
                    )
                )
        return node

    def model(self, name: str, depth: int) -> LineageNode:
        model = self.models.get(name)
        if model is None:
            return LineageNode(
                "model",
                name,
                f"model {name} (not registered: a declared label)",
                {"registered": False},
            )
        label = f"model {name}: generation {model.generation}" + (
            " (declared)" if model.declared else ""
        )
        if model.fractions:
            label += (
                f"; trained on {_percent(model.fractions.get('real', 0))} real "
                f"({_percent(model.fractions.get('fresh_real', 0))} fresh), "
                f"{_percent(model.fractions.get('synthetic', 0))} synthetic, "
                f"{_percent(model.fractions.get('unknown', 0))} unknown"
            )
        node = LineageNode("model", name, label, {"registered": True, **model.to_json()})
        if not self._visit("model", name):
            node.repeated = True
            return node
        if model.trained_on and depth < self.max_depth:
            node.parents.append(self.manifest(model.trained_on, depth + 1))
        elif model.trained_on:
            node.truncated = True
        return node

    def manifest(self, manifest_id: str, depth: int) -> LineageNode:
        from curator.assembly.manifest import Manifest

        rows = self.store.sql(
            "SELECT manifest_id, name, lineage, sequence, manifest_path FROM manifests WHERE manifest_id = "
            + sql_literal(manifest_id)
        ).to_pylist()
        if not rows:
            return LineageNode("manifest", manifest_id, f"manifest {manifest_id} (missing)", {})
        row = rows[0]

        manifest = Manifest.load(store_path(self.store.root, row["manifest_path"], "manifest"))
        overall = manifest.data["composition"]["overall"]
        fractions, by_generation = _composition_fractions(overall)
        label = (
            f"manifest {row['name'] or manifest_id} ({manifest_id}, lineage {row['lineage']} "
            f"#{row['sequence']}): {overall['rows']:,} rows; real {_percent(fractions['real'])} "
            f"(fresh {_percent(fractions['fresh_real'])}), synthetic {_percent(fractions['synthetic'])}"
            + (
                " (" + ", ".join(f"gen {g}: {_percent(f)}" for g, f in by_generation.items()) + ")"
                if by_generation
                else ""
            )
            + f", unknown {_percent(fractions['unknown'])}"
        )
        node = LineageNode(
            "manifest",
            manifest_id,
            label,
            {
                "name": row["name"],
                "lineage": row["lineage"],
                "sequence": row["sequence"],
                "rows": overall["rows"],
                "fractions": fractions,
                "synthetic_by_generation": by_generation,
                "deepest_generation": deepest_generation(overall),
            },
        )
        if not self._visit("manifest", manifest_id):
            node.repeated = True
            return node
        if depth >= self.max_depth:
            node.truncated = True
            return node
        with self.store.connect() as con:
            groups = con.execute(
                "SELECT source, origin, generation, model, count(*) FROM usage WHERE manifest_id = ? "
                "GROUP BY ALL ORDER BY generation DESC NULLS LAST, origin, source, model NULLS FIRST",
                [manifest_id],
            ).fetchall()
        for source, origin, generation, model, n in groups:
            label = f"source {source}: {n:,} rows, {origin}" + (
                f", generation {generation}" if generation is not None else ""
            )
            if model:
                label += f", by model {model}"
            child = LineageNode(
                "source",
                str(source),
                label,
                {"origin": origin, "generation": generation, "model": model, "rows": int(n)},
            )
            if model and depth + 1 < self.max_depth:
                child.parents.append(self.model(model, depth + 2))
            elif model:
                child.truncated = True
            node.parents.append(child)
        return node


DEFAULT_DEPTH = 64


def lineage_tree(store: Store, ident: str, *, max_depth: int = DEFAULT_DEPTH) -> LineageNode:
    """Where `ident` came from: a sample (by ``sample_id``), a model (by name) or a manifest (by
    id, name or path), walked upstream: sample ← model ← manifest ← its sources and generations ←
    the models that made them ← …"""
    walker = _Walker(store, max_depth)
    if ident in walker.models:
        return walker.model(ident, 0)
    rows = _sample_rows(store, ident)
    if rows:
        return walker.sample(rows[0], 0)
    from curator.assembly.assemble import find_manifest

    try:
        manifest = find_manifest(store, ident)
    except CuratorError:
        raise CuratorError(
            f"`{ident}` is not a sample id, a registered model or a manifest of store `{store.root}`",
            'sample ids are in `curator sql "SELECT sample_id FROM samples LIMIT 5"`; models in '
            "`curator model list`; manifests in `curator manifest list`",
        ) from None
    return walker.manifest(manifest.manifest_id, 0)


def render_tree(node: LineageNode) -> Any:
    """A :class:`rich.tree.Tree` of the node and its parents."""
    from rich.markup import escape
    from rich.tree import Tree

    def label(n: LineageNode) -> str:
        text = escape(n.label)
        if n.repeated:
            text += " [dim](see above)[/dim]"
        if n.truncated:
            text += " [dim](… deeper levels cut: raise --depth)[/dim]"
        return text

    tree = Tree(label(node))

    def add(parent: Any, n: LineageNode) -> None:
        for p in n.parents:
            add(parent.add(label(p)), p)

    add(tree, node)
    return tree


# -- the generation audit ------------------------------------------------------------------------


def lineage_report(store: Store, lineage: str) -> dict[str, Any]:
    """For each manifest of `lineage`, in order: the fractions of real, fresh real, synthetic (by
    generation) and unknown in the policy's unit, the deepest generation, the models trained on
    it (with the metrics they were registered with), and each policy constraint with its bound,
    the achieved value, whether it held and the margin (positive: room to spare)."""

    from curator.assembly.manifest import Manifest

    rows = store.sql(
        "SELECT manifest_id, name, sequence, created_at, manifest_path FROM manifests WHERE lineage = "
        + sql_literal(lineage)
        + " ORDER BY sequence"
    ).to_pylist()
    if not rows:
        lineages = sorted(
            {r["lineage"] for r in store.sql("SELECT DISTINCT lineage FROM manifests").to_pylist()}
        )
        raise CuratorError(
            f"lineage `{lineage}` has no manifest in store `{store.root}`",
            ("lineages: " + ", ".join(lineages)) if lineages else "assemble a training set first",
        )
    models_by_manifest: dict[str, list[Model]] = {}
    for model in list_models(store):
        if model.trained_on:
            models_by_manifest.setdefault(model.trained_on, []).append(model)
    entries = []
    for row in rows:
        manifest = Manifest.load(store_path(store.root, row["manifest_path"], "manifest"))
        overall = manifest.data["composition"]["overall"]
        fractions, by_generation = _composition_fractions(overall)
        entries.append(
            {
                "sequence": row["sequence"],
                "manifest_id": row["manifest_id"],
                "name": row["name"],
                "created_at": row["created_at"].isoformat(timespec="seconds"),
                "unit": manifest.data["policy"]["target"]["unit"],
                "rows": overall["rows"],
                "units": overall["units"],
                "fractions": fractions,
                "synthetic_by_generation": by_generation,
                "deepest_generation": deepest_generation(overall),
                "models": [m.name for m in models_by_manifest.get(row["manifest_id"], [])],
                "model_metrics": {
                    m.name: m.metrics for m in models_by_manifest.get(row["manifest_id"], [])
                },
                "constraints": manifest.data["constraints"],
                "all_held": all(c["held"] for c in manifest.data["constraints"]),
            }
        )
    return {"lineage": lineage, "manifests": entries}
