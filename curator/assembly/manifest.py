"""Manifests: the record of one assembled training set.

`manifest.json` (schema: ``schemas/manifest.schema.json``) holds the policy, seed and lineage,
the store snapshot it was drawn from (live shards with checksums), the plan, the achieved
composition (overall and per output shard, by origin, generation, source and freshness, in rows
and in the policy's unit; each shard with its own constraints report), the constraints with their
margins, the output files with checksums (paths relative to the set's directory: the shards under
`data/`, with format ``tokens`` each shard's token arrays under `tokens/`, listed as its
`arrays`, and the top-level `tokens`: tokenizer, separator and token counts), and the curator
version. The manifests of a store are
listed by :func:`manifests_of` and found by id, name or path by :func:`find_manifest`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.core.errors import CuratorError, did_you_mean
from curator.core.remote import is_url, join_url

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from curator.store.base import StoreBase as Store

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = "1"


class ManifestError(CuratorError):
    """A manifest that cannot be found or read, or whose outputs do not match it."""


def _constraints() -> dict[str, Any]:
    """Constraint entries: a fraction (of the set or shard, in the policy's unit), the deepest
    generation (`max_generation`) or the lowest confidence (`min_origin_confidence`)."""
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "bound", "achieved", "held"],
            "properties": {
                "name": {"type": "string"},
                "kind": {"enum": ["fraction", "generation", "confidence"]},
                "relation": {"enum": [">=", "<="]},
                "bound": {"type": "number"},
                "achieved": {"type": "number"},
                "held": {"type": "boolean"},
                "margin": {"type": "number"},
                "tolerance_units": {"type": "integer", "minimum": 0},
            },
        },
    }


def _breakdown() -> dict[str, Any]:
    counts = {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "required": ["rows", "units"],
            "properties": {
                "rows": {"type": "integer", "minimum": 0},
                "units": {"type": "integer", "minimum": 0},
            },
        },
    }
    cells = {
        "type": "array",
        "description": "The set by pool (fresh_real, used_real, synthetic, unknown) x generation x source.",
        "items": {
            "type": "object",
            "required": ["pool", "generation", "source", "rows", "units"],
            "properties": {
                "pool": {"enum": ["fresh_real", "used_real", "synthetic", "unknown"]},
                "generation": {"type": ["integer", "null"]},
                "source": {"type": "string"},
                "rows": {"type": "integer", "minimum": 0},
                "units": {"type": "integer", "minimum": 0},
            },
        },
    }
    return {
        "type": "object",
        "required": ["rows", "units", "by_origin", "by_generation", "by_source", "by_freshness"],
        "properties": {
            "rows": {"type": "integer", "minimum": 0},
            "units": {"type": "integer", "minimum": 0},
            "by_origin": counts,
            "by_generation": counts,
            "by_source": counts,
            "by_freshness": counts,
            "cells": cells,
        },
    }


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of `manifest.json`."""
    checksum = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://curator.dev/schemas/manifest.schema.json",
        "title": "curator manifest",
        "type": "object",
        "required": [
            "manifest_version",
            "manifest_id",
            "name",
            "lineage",
            "sequence",
            "created_at",
            "curator_version",
            "seed",
            "policy",
            "store",
            "plan",
            "composition",
            "constraints",
            "outputs",
        ],
        "properties": {
            "manifest_version": {"const": MANIFEST_VERSION},
            "manifest_id": {"type": "string", "minLength": 1},
            "name": {"type": ["string", "null"]},
            "lineage": {"type": "string", "minLength": 1},
            "sequence": {"type": "integer", "minimum": 1},
            "created_at": {"type": "string"},
            "curator_version": {"type": "string"},
            "seed": {"type": "integer"},
            "policy": {"type": "object"},
            "freshness": {
                "type": "object",
                "properties": {"used_manifests": {"type": "array", "items": {"type": "string"}}},
            },
            "store": {
                "type": "object",
                "required": ["root", "shards"],
                "properties": {
                    "root": {"type": "string"},
                    "shards": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["path", "rows", "sha256"],
                            "properties": {
                                "path": {"type": "string"},
                                "rows": {"type": "integer"},
                                "sha256": checksum,
                            },
                        },
                    },
                },
            },
            "plan": {"type": "object", "required": ["unit", "target", "total", "shrunk"]},
            "composition": {
                "type": "object",
                "required": ["overall", "shards"],
                "properties": {
                    "overall": _breakdown(),
                    "shards": {
                        "type": "array",
                        "items": {
                            **_breakdown(),
                            "properties": {
                                **_breakdown()["properties"],
                                "constraints": _constraints(),
                            },
                        },
                    },
                },
            },
            "constraints": _constraints(),
            "token_counts": {
                "type": "object",
                "description": "A tokens target: the column counted, and the tokenizers that "
                "counted the chosen samples (none for a column curator did not count).",
                "required": ["column", "tokenizers"],
                "properties": {
                    "column": {"type": "string", "minLength": 1},
                    "tokenizers": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["path", "sha256", "vocab_size"],
                            "properties": {
                                "path": {"type": "string"},
                                "sha256": checksum,
                                "vocab_size": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                },
            },
            "outputs": {
                "type": "array",
                "description": "The output shards in order, paths relative to the set's directory "
                "(`data/train-00000-of-00004.parquet`).",
                "items": {
                    "type": "object",
                    "required": ["path", "rows", "bytes", "sha256"],
                    "properties": {
                        "path": {"type": "string"},
                        "rows": {"type": "integer", "minimum": 0},
                        "bytes": {"type": "integer", "minimum": 0},
                        "sha256": checksum,
                        "arrays": {
                            "type": "array",
                            "description": 'With `[output] format = "tokens"`: the shard\'s '
                            "token ids (`tokens/<stem>.npy`, kind `ids`, one flat array, each "
                            "document followed by the separator) and its document offsets "
                            "(`tokens/<stem>.idx.npy`, kind `index`, int64, n_docs + 1).",
                            "items": {
                                "type": "object",
                                "required": ["path", "kind", "bytes", "sha256"],
                                "properties": {
                                    "path": {"type": "string"},
                                    "kind": {"enum": ["ids", "index"]},
                                    "bytes": {"type": "integer", "minimum": 0},
                                    "sha256": checksum,
                                    "tokens": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "description": "Token ids in the array, separators "
                                        "included.",
                                    },
                                },
                            },
                        },
                    },
                },
            },
            "tokens": _tokens(),
        },
    }


def _tokens() -> dict[str, Any]:
    """The top-level `tokens` of a set of format ``tokens``."""
    counts = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
    return {
        "type": "object",
        "description": 'The token arrays of a set assembled with `[output] format = "tokens"`. '
        "Every count here includes the separator that ends each document (one per document); "
        "a target's token column (`n_tokens`) counts without separators.",
        "required": [
            "tokenizer",
            "separator_id",
            "dtype",
            "counts_include_separators",
            "total",
            "by_origin",
            "by_generation",
            "by_freshness",
        ],
        "properties": {
            "tokenizer": {
                "type": "object",
                "required": ["path", "sha256", "vocab_size"],
                "properties": {
                    "path": {"type": "string"},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "vocab_size": {"type": "integer", "minimum": 1},
                },
            },
            "separator_id": {"type": "integer", "minimum": 0},
            "dtype": {"enum": ["uint16", "uint32"]},
            "counts_include_separators": {"const": True},
            "total": {"type": "integer", "minimum": 0},
            "by_origin": counts,
            "by_generation": counts,
            "by_freshness": counts,
        },
    }


@dataclass
class Manifest:
    """An assembled training set, as recorded in its `manifest.json`.

    >>> manifest = Manifest.load("train/manifest.json")   # doctest: +SKIP
    >>> manifest.verify()                                  # [] when every output is intact
    """

    data: dict[str, Any]
    path: Path | None = None
    #: What happened beyond the usual, for people (e.g. an interrupted assembly was completed).
    note: str | None = None

    def __repr__(self) -> str:
        # the whole manifest (kilobytes of composition) is `.data`; this says which set it is
        unit = self.data.get("plan", {}).get("unit", "rows")
        units = self.data.get("composition", {}).get("overall", {}).get("units")
        return (
            f"Manifest({self.manifest_id!r}, lineage={self.lineage!r} "
            f"#{self.data.get('sequence')}, rows={self.rows:,}"
            + (f", {unit}={units:,}" if unit != "rows" and units is not None else "")
            + f", files={len(self.files())}, out_dir={self.out_url or str(self.out_dir)!r})"
        )

    @property
    def manifest_id(self) -> str:
        return str(self.data["manifest_id"])

    @property
    def lineage(self) -> str:
        return str(self.data["lineage"])

    @property
    def rows(self) -> int:
        return int(self.data["composition"]["overall"]["rows"])

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return list(self.data["outputs"])

    @property
    def out_dir(self) -> Path:
        """The set's directory: the one holding the manifest.json this was read from (a set
        moved or copied is read where it is now), else — for the store's copy of a manifest
        (``STORE/manifests/<id>/``) — where the set was assembled."""
        here = self._set_dir()
        return here if here is not None else Path(self.data["out_dir"])

    @property
    def out_url(self) -> str | None:
        """The URL the set was assembled to (``s3://bucket/prefix``), or None for a directory."""
        out = str(self.data["out_dir"])
        return out if is_url(out) else None

    def _set_dir(self) -> Path | None:
        """The directory of the set whose own manifest.json this was read from; None when read
        from the store's copy, from a URL, or for a set assembled to a URL."""
        if self.path is None or is_url(str(self.data["out_dir"])):
            return None
        parent = self.path.resolve().parent  # a link to a set's manifest.json reads the set
        if parent.name == self.manifest_id and parent.parent.name == "manifests":
            return None  # the store's copy: the set is where it was assembled
        return parent

    def files(self) -> list[dict[str, Any]]:
        """Every file of the set, as the manifest lists it (`path` relative to the set's
        directory, `bytes`, `sha256`): each output shard, then its token arrays if any."""
        return [item for output in self.outputs for item in (output, *output.get("arrays", []))]

    def output_paths(self) -> list[Path]:
        """The output files of a set in a directory (see :meth:`output_locations` for a URL)."""
        return [self.out_dir / o["path"] for o in self.outputs]

    def output_locations(self) -> list[str]:
        """The output files as paths, or as URLs for a set assembled to a URL."""
        if self.out_url is not None:
            return [join_url(self.out_url, o["path"]) for o in self.outputs]
        return [str(path) for path in self.output_paths()]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest from a `manifest.json` file or from a directory holding one, or from
        a URL (``s3://bucket/prefix`` or ``…/manifest.json``), streamed through fsspec.

        Raises:
            ManifestError: no such file, or not a valid manifest.
        """
        if is_url(os.fspath(path)):
            return cls._load_url(os.fspath(path))
        target = Path(path)
        if target.is_dir():
            target = target / MANIFEST_FILE
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ManifestError(
                f"cannot read manifest `{target}`: {exc.strerror or exc}",
                "pass a manifest.json or the directory that holds it",
            ) from exc
        except json.JSONDecodeError as exc:
            raise ManifestError(f"`{target}` is not JSON: {exc}") from exc
        validate_manifest(data, str(target))
        return cls(data, target)

    @classmethod
    def _load_url(cls, url: str) -> Manifest:
        from curator.core.remote import open_binary

        target = url if url.endswith("/" + MANIFEST_FILE) else join_url(url, MANIFEST_FILE)
        try:
            with open_binary(target) as handle:
                data = json.loads(handle.read().decode("utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(
                f"cannot read manifest `{target}`: no such object",
                "pass the URL of a set's prefix or of its manifest.json",
            ) from exc
        except CuratorError as exc:
            raise ManifestError(
                f"cannot read manifest `{target}`: {exc.message}",
                exc.hint or "pass the URL of a set's prefix or of its manifest.json",
            ) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"`{target}` is not JSON: {exc}") from exc
        validate_manifest(data, target)
        return cls(data, None)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temporary name, then rename)."""
        target = Path(path)
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, target)

    def verify(self) -> list[str]:
        """Recompute every file's checksum (:meth:`files`: the output shards and their token
        arrays; streaming the objects of a set assembled to a URL). Returns one line per file that is missing or changed (empty when all are
        intact)."""
        from curator.store.shards import sha256_file

        if self.out_url is not None:
            return self._verify_url(self.out_url)
        problems = []
        for output in self.files():
            path = self.out_dir / output["path"]
            if not path.exists():
                problems.append(f"missing: {path}")
                continue
            size = path.stat().st_size
            if size != output["bytes"]:
                problems.append(
                    f"changed: {path} ({size:,} bytes, manifest says {output['bytes']:,})"
                )
                continue
            if sha256_file(str(path)) != output["sha256"]:
                problems.append(f"changed: {path} (sha256 differs)")
        return problems

    def _verify_url(self, url: str) -> list[str]:
        from curator.core.remote import filesystem, reaching, sha256_url

        fs, _ = filesystem(url)
        fs.invalidate_cache()  # objects may have changed since this process listed them
        problems = []
        for output in self.files():
            location = join_url(url, output["path"])
            inner = filesystem(location)[1]
            with reaching(location):
                if not fs.exists(inner):
                    problems.append(f"missing: {location}")
                    continue
                size = int(fs.size(inner))
            if size != output["bytes"]:
                problems.append(
                    f"changed: {location} ({size:,} bytes, manifest says {output['bytes']:,})"
                )
                continue
            if sha256_url(location) != output["sha256"]:
                problems.append(f"changed: {location} (sha256 differs)")
        return problems


def validate_manifest(data: dict[str, Any], where: str = "manifest") -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_json_schema())
    error = next(
        iter(sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))),
        None,
    )
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ManifestError(f"`{where}` is not a valid manifest: `{key}`: {error.message}")


if __name__ == "__main__":  # pragma: no cover - regenerates schemas/manifest.schema.json
    print(json.dumps(manifest_json_schema(), indent=2))


def manifests_of(store: Store) -> list[dict[str, Any]]:
    """Every manifest of the store, by lineage and sequence."""
    return store.sql(
        "SELECT manifest_id, name, lineage, sequence, created_at, unit, target, rows, units, out_dir "
        "FROM manifests ORDER BY lineage, sequence"
    ).to_pylist()


def find_manifest(store: Store, ident: str) -> Manifest:
    """A manifest by id, by name (the latest of that name), or by path or URL."""
    if os.path.exists(ident) or is_url(ident):
        return Manifest.load(ident)
    for row in reversed(manifests_of(store)):
        if ident in (row["manifest_id"], row["name"]):
            return Manifest.load(
                Path(store.root) / "manifests" / row["manifest_id"] / MANIFEST_FILE
            )
    if looks_like_path(ident):
        raise CuratorError(
            f"no file or directory `{ident}` (nor a manifest of that id or name in store "
            f"`{store.root}`)",
            "check the path: pass a set's directory or its manifest.json",
        )
    known = sorted({str(row["name"]) for row in manifests_of(store) if row["name"]})
    raise CuratorError(
        f"no manifest `{ident}` in store `{store.root}`",
        did_you_mean(ident, known)
        + "list them with `curator manifest list` (Python: `store.manifests()`)",
    )


def looks_like_path(ident: str) -> bool:
    """Whether `ident` reads as a path rather than a manifest id or name: it holds a path
    separator or ends in ``.json``."""
    return "/" in ident or os.sep in ident or ident.endswith(".json")


def usage_from_selection(
    con: duckdb.DuckDBPyConnection, manifest_id: str, selection: str
) -> pa.RecordBatchReader:
    """The usage ledger rows of manifest `manifest_id` (which content it used, with its labels,
    and whether as fresh real), read from its selection file `selection`. A selection from
    before models has no `model` column: it reads as null."""
    columns = {
        row[0]
        for row in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [selection]).fetchall()
    }
    model = "model" if "model" in columns else "NULL::VARCHAR"
    return con.sql(
        "SELECT ? AS manifest_id, content_hash, "
        "CASE WHEN category IN ('fresh_real', 'used_real') THEN 'real' ELSE category END AS origin, "
        f"category = 'fresh_real' AS fresh, sample_id, source, generation, {model} AS model "
        "FROM read_parquet(?)",
        params=[manifest_id, selection],
    ).to_arrow_reader()
