"""Lineage trees: where a sample, a model or a manifest came from, walked upstream through the
catalog's ``lineage_edges`` (sample ← model ← manifest ← its sources and generations ← the models
that made them ← …), and :func:`render_tree` to print one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from curator.core.errors import CuratorError
from curator.lineage.models import composition_fractions, deepest_generation, list_models
from curator.store.catalog import sql_literal, store_path

if TYPE_CHECKING:
    from curator.api import Store


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
        fractions, by_generation = composition_fractions(overall)
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
    from curator.assembly.manifest import find_manifest

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
