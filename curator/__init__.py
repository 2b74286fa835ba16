"""curator: dataset curation with provenance.

Every sample in a store carries whether it is real or generated, its generation depth and the
evidence behind that label; training sets are assembled with a guaranteed share of fresh real data.

>>> import curator
>>> store = curator.init_store("store")                                   # doctest: +SKIP
>>> store.ingest(["corpus.jsonl"], source="web-2021", origin="real")     # doctest: +SKIP
>>> store.stats().by_origin()                                             # doctest: +SKIP
{'real': 1000}
"""

from __future__ import annotations

import os as _os
import sys as _sys
from typing import TYPE_CHECKING, Any

if _sys.platform.startswith("linux"):
    # Arrow's jemalloc pool instead of its default (mimalloc): assembly 20-40 % and ingest of
    # small inputs about 8 % faster here (README, Performance). Read when pyarrow first
    # allocates, so it takes effect unless pyarrow was used before curator was imported; a
    # value you set wins.
    _os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

from curator.core.errors import (
    CuratorError,
    IngestFailed,
    InputError,
    ProvenanceError,
    QueryError,
    StoreError,
    StoreLockedError,
)
from curator.core.version import __version__

if TYPE_CHECKING:
    from curator.api import IngestResult, Manifest, Stats, Store, init_store, open_store
    from curator.assembly.manifest import ManifestError
    from curator.assembly.planner import ShortfallError
    from curator.assembly.policy import Policy, PolicyError
    from curator.core.provenance import ProvenanceSpec
    from curator.ingest.tag import TagResult, tag
    from curator.training.loader import load_dataset

# The public names that live in modules importing pyarrow, duckdb, numpy or datasets are loaded
# on first use (PEP 562), so `import curator` and `curator --help` stay fast.
_LAZY = {
    "IngestResult": "curator.api",
    "Stats": "curator.api",
    "Store": "curator.api",
    "init_store": "curator.api",
    "open_store": "curator.api",
    "Manifest": "curator.api",
    "ManifestError": "curator.assembly.manifest",
    "ShortfallError": "curator.assembly.planner",
    "Policy": "curator.assembly.policy",
    "PolicyError": "curator.assembly.policy",
    "ProvenanceSpec": "curator.core.provenance",
    "TagResult": "curator.ingest.tag",
    "tag": "curator.ingest.tag",
    "load_dataset": "curator.training.loader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'curator' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CuratorError",
    "IngestFailed",
    "IngestResult",
    "InputError",
    "Manifest",
    "ManifestError",
    "Policy",
    "PolicyError",
    "ProvenanceError",
    "ProvenanceSpec",
    "QueryError",
    "ShortfallError",
    "Stats",
    "Store",
    "StoreError",
    "StoreLockedError",
    "TagResult",
    "__version__",
    "init_store",
    "load_dataset",
    "open_store",
    "tag",
]
