"""Models and generation depth: the self-consuming loop, closed.

A model is registered against the manifest it was trained on. Its generation is the deepest
generation among that manifest's samples (0 when it saw only real data), and the samples it makes
are generation + 1 (:meth:`Store.ingest` with ``generated_by``). A model trained elsewhere is
registered with its generation declared.

The catalog holds ``models`` and the view ``lineage_edges`` (sample → manifest → model → sample,
and sample → derived sample). :mod:`curator.lineage.tree` walks them upstream from a sample, a
model or a manifest; :mod:`curator.lineage.audit` audits every manifest of a lineage;
:mod:`curator.lineage.upgrade` brings a catalog from before models up to date.
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
from curator.lineage.upgrade import _upgrade_usage, ensure_current
from curator.store.catalog import sql_literal, store_path

if TYPE_CHECKING:
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


def composition_fractions(overall: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
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
            fractions, by_generation = composition_fractions(overall)
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
