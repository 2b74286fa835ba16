"""What an export is of: a manifest named by path (no store needed), by id or name (in a store),
or, for the training summary, every manifest of a lineage."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from curator.assembly.manifest import Manifest, find_manifest, looks_like_path, manifests_of
from curator.core.errors import CuratorError, did_you_mean
from curator.core.remote import is_url
from curator.store.paths import store_path

if TYPE_CHECKING:
    from curator.store.base import StoreBase as Store

_BY_PATH_HINT = (
    "pass a manifest.json or the directory that holds it, or, with --store DIR (env "
    "CURATOR_STORE), a manifest id or name"
)


def resolve_manifest(ident: str | os.PathLike[str] | Manifest, store: Store | None) -> Manifest:
    """The manifest `ident`: a :class:`Manifest`, a path or URL (a manifest.json or the set's
    directory), or a manifest id or name in `store`.

    Raises:
        CuratorError: nothing at the path, no store to look an id up in, or no such manifest.
    """
    if isinstance(ident, Manifest):
        return ident
    text = os.fspath(ident)
    if os.path.exists(text) or is_url(text):
        return Manifest.load(text)
    if store is None:
        raise CuratorError(f"no manifest at `{text}`", _BY_PATH_HINT)
    return find_manifest(store, text)


def resolve_manifests(
    ident: str | os.PathLike[str] | Manifest, store: Store | None
) -> list[Manifest]:
    """The manifests `ident` names: one manifest (as :func:`resolve_manifest`), or, when it is no
    manifest of `store`, every manifest of the lineage of that name, in sequence order.

    Raises:
        CuratorError: nothing at the path, no store, or neither a manifest nor a lineage.
    """
    if isinstance(ident, Manifest):
        return [ident]
    text = os.fspath(ident)
    if os.path.exists(text) or is_url(text) or store is None:
        return [resolve_manifest(text, store)]
    rows = manifests_of(store)
    if any(text in (row["manifest_id"], row["name"]) for row in rows):
        return [find_manifest(store, text)]
    lineage = [row for row in rows if row["lineage"] == text]
    if not lineage and looks_like_path(text):
        return [find_manifest(store, text)]  # it says that the path does not exist
    if not lineage:
        known = sorted({str(row[k]) for row in rows for k in ("name", "lineage") if row[k]})
        raise CuratorError(
            f"no manifest or lineage `{text}` in store `{store.root}`",
            did_you_mean(text, known)
            + "list them with `curator manifest list` (Python: `store.manifests()`)",
        )
    paths = {
        row["manifest_id"]: row["manifest_path"]
        for row in store.sql("SELECT manifest_id, manifest_path FROM manifests").to_pylist()
    }
    return [
        Manifest.load(store_path(store.root, paths[row["manifest_id"]], "manifest"))
        for row in lineage
    ]
