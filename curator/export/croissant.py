"""A set as Croissant JSON-LD: Croissant 1.1 (MLCommons, published 2026-01-29,
http://mlcommons.org/croissant/1.1) with the Croissant RAI vocabulary 1.0
(http://mlcommons.org/croissant/RAI/1.0) and W3C PROV-O.

What it holds:

- ``conformsTo`` both specifications; the JSON-LD context of the Croissant 1.1 appendix, plus
  ``prov`` and ``curator`` (the namespace of curator's own provenance terms).
- ``distribution``: one ``cr:FileObject`` per output file, with its ``sha256`` and size, and one
  ``cr:FileSet`` naming the same files, which the records are read through. Paths are relative to
  the Croissant file, so the set and its metadata move together; the file must therefore be
  written in the set's directory or a directory above it.
- ``recordSet`` ``samples``: one field per column of the output files (the content, the input's
  columns and the provenance columns), keyed by ``sample_id``; and a record-level ``annotation``,
  ``samples/provenance``, whose sub-fields map the provenance columns to PROV-O through
  ``equivalentProperty`` (Croissant 1.1, "Data-level provenance"): ``model`` is
  ``prov:wasGeneratedBy``, ``parent_id`` ``prov:wasDerivedFrom``, ``source``
  ``prov:hadPrimarySource``, ``collected_at`` ``prov:generatedAtTime``; ``origin``,
  ``generation``, ``origin_evidence`` and ``origin_confidence`` are ``curator:`` terms.
- dataset-level PROV: ``prov:wasGeneratedBy`` the assembly (its policy, seed and the store shards
  it used) and ``prov:wasDerivedFrom`` each source.
- RAI properties, with the exact names of the RAI 1.0 vocabulary (``croissant_rai.ttl``):
  ``rai:dataCollection``, ``rai:dataCollectionType``, ``rai:dataCollectionRawData``,
  ``rai:dataCollectionTimeframe``, ``rai:dataPreprocessingProtocol``,
  ``rai:dataManipulationProtocol``, ``rai:dataLimitations``, ``rai:dataUseCases``,
  ``rai:machineAnnotationTools``.
"""

from __future__ import annotations

import glob
import json
import os
from typing import TYPE_CHECKING, Any

from curator.core.errors import CuratorError
from curator.core.remote import is_url, join_url
from curator.core.version import __version__
from curator.export.facts import SetFacts, gather, iso, write_text

if TYPE_CHECKING:
    import pyarrow as pa

    from curator.assembly.manifest import Manifest
    from curator.store.base import StoreBase as Store

CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"
RAI_1_0 = "http://mlcommons.org/croissant/RAI/1.0"
PROV = "http://www.w3.org/ns/prov#"
#: The namespace of curator's own per-record provenance terms.
CURATOR_NS = "https://curator.dev/ns#"

#: The JSON-LD context of Croissant 1.1 (its Appendix 1; with the keys mlcroissant 1.1 also
#: writes), plus `prov` and `curator`.
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "prov": PROV,
    "curator": CURATOR_NS,
    "annotation": "cr:annotation",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "excludes": "cr:excludes",
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "readLines": "cr:readLines",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sdVersion": "cr:sdVersion",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "unArchive": "cr:unArchive",
    "value": "cr:value",
}

#: Each provenance column's term in the per-record annotation, and what it says.
PROVENANCE_TERMS: dict[str, tuple[str, str]] = {
    "model": ("prov:wasGeneratedBy", "The generative model that made the sample (synthetic)."),
    "parent_id": ("prov:wasDerivedFrom", "The sample this one was derived from, if any."),
    "source": ("prov:hadPrimarySource", "The dataset or crawl the sample came from."),
    "collected_at": ("prov:generatedAtTime", "When the content was created or captured (UTC)."),
    "origin": ("curator:origin", "`real`, `synthetic` or `unknown`."),
    "generation": (
        "curator:generation",
        "0 for real; k >= 1 for synthetic (1 + the generation of its model); null for unknown.",
    ),
    "origin_evidence": ("curator:originEvidence", "Why the origin is what it is."),
    "origin_confidence": ("curator:originConfidence", "Confidence in the origin, 0..1."),
}

RECORD_SET = "samples"
FILE_SET = "output-files"
#: The shards' media type by `[output] format` ("tokens" sets: their Parquet shards).
_ENCODING = {
    "parquet": "application/x-parquet",
    "jsonl": "application/jsonlines",
    "tokens": "application/x-parquet",
}


def to_croissant(
    manifest: Manifest,
    *,
    location: str | os.PathLike[str] | None = None,
    license: str | None = None,
    store: Store | None = None,
    facts: SetFacts | None = None,
) -> dict[str, Any]:
    """The Croissant 1.1 JSON-LD of the set of `manifest`, as a dict.

    Args:
        manifest: the set's manifest.
        location: where the JSON-LD will be written (file paths in it are relative to its
            directory); default: ``croissant.json`` in the set's directory.
        license: the set's license (a URL or SPDX id); default: none given (mlcroissant then
            warns that the recommended ``license`` is missing).
        store: the store, for the registered models' training manifests (optional).
        facts: facts already gathered (:func:`curator.export.facts.gather`).

    Raises:
        CuratorError: `location` is not in the set's directory or above it, or an output file
            cannot be read.

    >>> doc = to_croissant(Manifest.load("train/gen-2"))  # doctest: +SKIP
    >>> doc["conformsTo"]  # doctest: +SKIP
    ['http://mlcommons.org/croissant/1.1', 'http://mlcommons.org/croissant/RAI/1.0']
    """
    facts = facts or gather(manifest, store=store)
    fmt = str(facts.policy.get("output", {}).get("format", "parquet"))
    paths = _relative_paths(manifest, location)
    data = manifest.data
    files = [
        {
            "@type": "cr:FileObject",
            "@id": output["path"],
            "name": output["path"],
            "contentUrl": path,
            "contentSize": f"{output['bytes']} B",
            "encodingFormat": _ENCODING[fmt],
            "sha256": output["sha256"],
        }
        for output, path in zip(manifest.outputs, paths, strict=True)
    ]
    file_set: dict[str, Any] = {
        "@type": "cr:FileSet",
        "@id": FILE_SET,
        "name": FILE_SET,
        "description": "The set's output files (the same as the file objects), read as one table.",
        "encodingFormat": _ENCODING[fmt],
        "includes": [glob.escape(path) for path in paths],
    }
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": [CROISSANT_1_1, RAI_1_0],
        "name": facts.name,
        "description": _description(facts),
        "version": f"{data['sequence']}.0.0",
        "datePublished": data["created_at"],
        "citeAs": (
            f"@misc{{{data['manifest_id']}, title = {{{facts.name}: curator manifest "
            f"{data['manifest_id']} of lineage {data['lineage']}}}, year = {{{data['created_at'][:4]}}}}}"
        ),
        "keywords": _keywords(facts),
        "prov:wasGeneratedBy": _assembly_activity(facts),
        "prov:wasDerivedFrom": [
            {"@id": f"urn:curator:source:{source.name}", "prov:label": source.name}
            for source in facts.sources
        ],
        **_rai(facts),
        "distribution": [*files, file_set],
        "recordSet": [_record_set(facts.columns)],
    }
    if license:
        doc["license"] = license
    if data.get("out_dir") and is_url(str(data["out_dir"])):
        doc["url"] = str(data["out_dir"])
    return doc


def write_croissant(
    manifest: Manifest,
    path: str | os.PathLike[str],
    *,
    license: str | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """Write the Croissant JSON-LD of the set of `manifest` to `path` (see :func:`to_croissant`)
    and return it."""
    doc = to_croissant(manifest, location=path, license=license, store=store)
    write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return doc


def _relative_paths(manifest: Manifest, location: str | os.PathLike[str] | None) -> list[str]:
    """Each output file as the Croissant file will name it: a URL for a set on object storage,
    else a path relative to the directory of `location`."""
    if manifest.out_url is not None:
        return [join_url(manifest.out_url, o["path"]) for o in manifest.outputs]
    out_dir = os.path.abspath(manifest.out_dir)
    base = os.path.dirname(os.path.abspath(location)) if location else out_dir
    relative = os.path.relpath(out_dir, base)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        raise CuratorError(
            f"the Croissant file `{location}` is outside the set's directory `{out_dir}`: its "
            "file set names the set's files by a path below the Croissant file",
            f"write it in the set's directory or above it, e.g. -o {os.path.join(out_dir, 'croissant.json')}",
        )
    return [os.path.normpath(os.path.join(relative, o["path"])) for o in manifest.outputs]


def _description(facts: SetFacts) -> str:
    parts = ", ".join(
        f"{component.label} {100 * facts.share(component.units):.1f}%"
        for component in facts.components
    )
    return (
        f"Training set `{facts.name}` (curator manifest {facts.manifest.manifest_id}, lineage "
        f"{facts.manifest.lineage} #{facts.manifest.data['sequence']}): {facts.rows:,} rows, "
        f"{facts.units:,} {facts.unit}; by {facts.unit}: {parts}."
    )


def _keywords(facts: SetFacts) -> list[str]:
    words = ["curator", "provenance"]
    if facts.synthetic_units:
        words.append("synthetic")
    return words


def _assembly_activity(facts: SetFacts) -> dict[str, Any]:
    data = facts.manifest.data
    store = data["store"]
    return {
        "@type": "prov:Activity",
        "prov:label": f"curator assemble (manifest {data['manifest_id']}, seed {data['seed']})",
        "prov:endedAtTime": data["created_at"],
        "prov:used": [
            {
                "@id": f"urn:curator:shard:{shard['sha256']}",
                "prov:label": shard["path"],
                "sha256": shard["sha256"],
            }
            for shard in store["shards"]
        ],
        "prov:wasAssociatedWith": {
            "@type": "prov:SoftwareAgent",
            "prov:label": f"curator {data['curator_version']}",
        },
    }


def _rai(facts: SetFacts) -> dict[str, Any]:
    policy = facts.policy
    sources = "; ".join(
        f"{s.name} ({'/'.join(s.origins) or 'no rows'}, {s.rows:,} rows"
        + (
            f", collected {iso(s.collected_from)} to {iso(s.collected_to)}"
            if s.collected_from
            else ", collection time unknown"
        )
        + ")"
        for s in facts.sources
    )
    models = "; ".join(_model_text(m) for m in facts.models) or "none"
    dedup = policy.get("dedup", {})
    dedup_steps = [
        kind
        for kind, on in (
            ("exact duplicates", dedup.get("exact")),
            ("near duplicates", dedup.get("near")),
        )
        if on
    ]
    constraints = "; ".join(
        f"{c['name']} {c.get('relation', '')} {c['bound']} (achieved {c['achieved']}, "
        f"{'held' if c['held'] else 'violated'})"
        for c in facts.constraints
    )
    froms = [s.collected_from for s in facts.sources if s.collected_from]
    tos = [s.collected_to for s in facts.sources if s.collected_to]
    rai: dict[str, Any] = {
        "rai:dataCollection": (
            f"Assembled by curator {__version__} from a store of samples, each carrying its "
            f"origin, generation depth and the evidence for them. Sources: {sources}."
        ),
        "rai:dataCollectionType": _collection_types(facts),
        "rai:dataCollectionRawData": sources,
        "rai:dataPreprocessingProtocol": [
            (
                f"Deduplication before sampling: {' and '.join(dedup_steps)} removed, keeping in "
                "each cluster the most trustworthy member (real before synthetic, lower "
                "generation, higher confidence, earlier)."
            )
            if dedup_steps
            else "No deduplication.",
            f"Mixing policy `{policy.get('name')}` (seed {policy.get('seed')}), target "
            f"{policy['target']['amount']:,} {policy['target']['unit']}: {constraints}.",
        ],
        "rai:dataManipulationProtocol": (
            "Samples are selected, not altered: a seeded hash of the content orders each pool "
            "(fresh real, used real, synthetic by generation, unknown) and the policy's amounts "
            "are taken in that order."
        ),
        "rai:dataLimitations": [
            f"{100 * facts.share(facts.synthetic_units):.1f}% of the set ({facts.unit}) is "
            f"synthetic, made by: {models}.",
            f"{100 * facts.share(sum(c.units for c in facts.components if c.pool == 'unknown')):.1f}% "
            "of the set is of unknown origin (counted as not real).",
        ],
        "rai:dataUseCases": ["Training"],
    }
    if froms:
        rai["rai:dataCollectionTimeframe"] = [iso(min(froms)), iso(max(tos))]
    if facts.models:
        rai["rai:machineAnnotationTools"] = [
            f"curator {__version__}: origin, generation and evidence per sample"
        ]
    return rai


def _model_text(model: Any) -> str:
    text = f"{model.name} ({model.rows:,} rows, generation {'/'.join(map(str, model.generations))}"
    if model.trained_on:
        text += f", trained on manifest {model.trained_on}"
    return text + ")"


def _collection_types(facts: SetFacts) -> list[str]:
    """RAI 1.0's recommended values that fit: synthetic rows are software-made; for real and
    unknown rows curator knows no more than that they were collected, so `Others`."""
    types = []
    if any(s.origins and set(s.origins) - {"synthetic"} for s in facts.sources):
        types.append("Others")
    if facts.synthetic_units:
        types.append("Software Collection")
    return types


def _data_type(name: str, arrow_type: pa.DataType) -> str:
    import pyarrow as pa

    if name == "image" or pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "sc:ImageObject"
    if pa.types.is_boolean(arrow_type):
        return "sc:Boolean"
    if pa.types.is_integer(arrow_type):
        return "sc:Integer"
    if pa.types.is_floating(arrow_type):
        return "sc:Float"
    if pa.types.is_timestamp(arrow_type):
        return "sc:DateTime"
    if pa.types.is_date(arrow_type):
        return "sc:Date"
    return "sc:Text"


def _field(field_id: str, column: str, arrow_type: pa.DataType, **extra: Any) -> dict[str, Any]:
    return {
        "@type": "cr:Field",
        "@id": field_id,
        "name": column,
        "dataType": _data_type(column, arrow_type),
        "source": {"fileSet": {"@id": FILE_SET}, "extract": {"column": column}},
        **extra,
    }


def _record_set(columns: tuple[tuple[str, pa.DataType], ...]) -> dict[str, Any]:
    from curator.core.schema import PROVENANCE_COLUMNS

    described = {c.name: c.description for c in PROVENANCE_COLUMNS}
    fields = [
        _field(
            f"{RECORD_SET}/{name}",
            name,
            arrow_type,
            **({"description": described[name]} if name in described else {}),
        )
        for name, arrow_type in columns
    ]
    types = dict(columns)
    annotation = {
        "@type": "cr:Field",
        "@id": f"{RECORD_SET}/provenance",
        "name": "provenance",
        "description": "Where each sample came from, as PROV-O (and curator) properties of the record.",
        "subField": [
            _field(
                f"{RECORD_SET}/provenance/{name}",
                name,
                types[name],
                description=description,
                equivalentProperty=term,
            )
            for name, (term, description) in PROVENANCE_TERMS.items()
            if name in types
        ],
    }
    record_set: dict[str, Any] = {
        "@type": "cr:RecordSet",
        "@id": RECORD_SET,
        "name": RECORD_SET,
        "description": "One record per sample of the set, with its provenance.",
        "field": fields,
        "annotation": annotation,
    }
    if "sample_id" in types:
        record_set["key"] = {"@id": f"{RECORD_SET}/sample_id"}
    return record_set
