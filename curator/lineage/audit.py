"""The generation audit: for each manifest of a lineage, in order, what it was made of (real,
fresh real, synthetic by generation, unknown), the deepest generation, the models trained on it and
whether every constraint of its policy held."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curator.core.errors import CuratorError
from curator.lineage.models import Model, composition_fractions, deepest_generation, list_models
from curator.store.catalog import sql_literal, store_path

if TYPE_CHECKING:
    from curator.api import Store


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
        fractions, by_generation = composition_fractions(overall)
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
