"""A set as a Hugging Face dataset card (``README.md``): YAML metadata made with
``huggingface_hub``'s :class:`~huggingface_hub.DatasetCardData` (tags, with ``synthetic`` when the
set holds synthetic rows; size category; source datasets; the set's files as the ``default``
config), and a body with the composition, the sources, the models, the policy and the constraint
report. Nothing is uploaded: the card is a file."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from curator.export.facts import (
    SetFacts,
    gather,
    iso,
    markdown_table,
    require,
    size_category,
    write_text,
)

if TYPE_CHECKING:
    from curator.assembly.manifest import Manifest
    from curator.store.base import StoreBase as Store


def to_card(
    manifest: Manifest,
    *,
    location: str | os.PathLike[str] | None = None,
    license: str | None = None,
    store: Store | None = None,
    facts: SetFacts | None = None,
) -> str:
    """The dataset card of the set of `manifest`, as Markdown with a YAML header.

    Args:
        manifest: the set's manifest.
        location: where the card will be written; when it is in the set's directory or above
            it, the YAML names the set's files (relative paths) as the ``default`` config.
        license: the set's license (a Hub license id such as ``cc-by-4.0``); default: none given.
        store: the store, for the registered models' training manifests (optional).
        facts: facts already gathered (:func:`curator.export.facts.gather`).

    >>> print(to_card(Manifest.load("train/gen-2"))[:3])  # doctest: +SKIP
    ---
    """
    require("huggingface_hub", "huggingface_hub", "hf")
    from huggingface_hub import DatasetCardData

    facts = facts or gather(manifest, store=store)
    tags = ["curator", "provenance"]
    if facts.synthetic_units:
        tags.append("synthetic")
    extra: dict[str, Any] = {}
    files = _data_files(manifest, location)
    if files:
        extra["configs"] = [
            {"config_name": "default", "data_files": [{"split": "train", "path": files}]}
        ]
    data = DatasetCardData(
        license=license,
        pretty_name=facts.name,
        size_categories=[size_category(facts.rows)],
        source_datasets=[source.name for source in facts.sources],
        tags=tags,
        **extra,
    )
    return f"---\n{data.to_yaml()}\n---\n\n{_body(facts)}"


def write_card(
    manifest: Manifest,
    path: str | os.PathLike[str],
    *,
    license: str | None = None,
    store: Store | None = None,
) -> str:
    """Write the dataset card of the set of `manifest` to `path` (see :func:`to_card`)."""
    text = to_card(manifest, location=path, license=license, store=store)
    write_text(path, text)
    return text


def _data_files(manifest: Manifest, location: str | os.PathLike[str] | None) -> list[str]:
    if manifest.out_url is not None or location is None:
        return []
    out_dir = os.path.abspath(manifest.out_dir)
    relative = os.path.relpath(out_dir, os.path.dirname(os.path.abspath(location)))
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return []
    return [os.path.normpath(os.path.join(relative, o["path"])) for o in manifest.outputs]


def _percent(facts: SetFacts, units: int) -> str:
    return f"{100 * facts.share(units):.1f}%"


def _body(facts: SetFacts) -> str:
    data = facts.manifest.data
    unit = facts.unit
    lines = [
        f"# {facts.name}",
        "",
        f"A training set assembled by curator {data['curator_version']} under a mixing policy: "
        f"manifest `{data['manifest_id']}`, #{data['sequence']} of lineage "
        f"`{data['lineage']}`, made {data['created_at']}. {facts.rows:,} rows ({facts.units:,} "
        f"{unit}) in {len(data['outputs']):,} shard(s). Every row carries its provenance: origin "
        "(`real`, `synthetic`, `unknown`), generation depth, the model that made it, the sample it "
        "was derived from, its source and collection time, and the evidence for its label.",
        "",
        "## Composition",
        "",
        "By the policy's unit. *Fresh real*: real content no earlier manifest of the lineage "
        "used; *used real*: real content an earlier manifest used; unknown counts as not real.",
        "",
        _table(
            facts,
            ["component", "rows", unit, "share"],
            [
                (c.label, f"{c.rows:,}", f"{c.units:,}", _percent(facts, c.units))
                for c in facts.components
            ],
        ),
        "",
        "## Sources",
        "",
        _table(
            facts,
            ["source", "origin", "rows", unit, "share", "collected"],
            [
                (
                    s.name,
                    ", ".join(s.origins),
                    f"{s.rows:,}",
                    f"{s.units:,}",
                    _percent(facts, s.units),
                    f"{iso(s.collected_from)} to {iso(s.collected_to)}"
                    if s.collected_from
                    else "unknown",
                )
                for s in facts.sources
            ],
        ),
        "",
    ]
    if facts.models:
        lines += [
            "## Models behind the synthetic rows",
            "",
            markdown_table(
                ["model", "rows", "generation of its rows", "sources", "trained on"],
                [
                    (
                        m.name,
                        f"{m.rows:,}",
                        ", ".join(map(str, m.generations)),
                        ", ".join(m.sources),
                        m.trained_on or ("-" if facts.omitted else "not registered"),
                    )
                    for m in facts.models
                ],
            ),
            "",
        ]
    lines += [
        "## Policy",
        "",
        "```json",
        json.dumps(facts.policy, indent=2, sort_keys=True),
        "```",
        "",
        "## Constraint report",
        "",
        "Over the whole set; every output file meets them too, within one sample.",
        "",
        markdown_table(
            ["constraint", "bound", "achieved", "held"],
            [
                (
                    c["name"],
                    f"{c.get('relation', '')} {c['bound']}".strip(),
                    str(c["achieved"]),
                    "yes" if c["held"] else "no",
                )
                for c in facts.constraints
            ],
        ),
        "",
        "## Files",
        "",
        markdown_table(
            ["file", "rows", "bytes", "sha256"],
            [
                (o["path"], f"{o['rows']:,}", f"{o['bytes']:,}", o["sha256"])
                for o in data["outputs"]
            ],
        ),
        "",
    ]
    if facts.omitted:
        lines += ["Not in this card: " + "; ".join(facts.omitted) + ".", ""]
    return "\n".join(lines)


def _table(facts: SetFacts, columns: list[str], rows: list[tuple[str, ...]]) -> str:
    """A table with a `rows` column and a column in the policy's unit, which is dropped when
    the unit is rows (it would repeat the rows)."""
    if facts.unit != "rows":
        return markdown_table(columns, rows)
    drop = columns.index("rows") + 1
    return markdown_table(
        columns[:drop] + columns[drop + 1 :], [row[:drop] + row[drop + 1 :] for row in rows]
    )
