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

from curator.api import IngestResult, Stats, Store, init_store, open_store
from curator.assembly.manifest import Manifest, ManifestError
from curator.assembly.planner import ShortfallError
from curator.assembly.policy import Policy, PolicyError
from curator.core.errors import (
    CuratorError,
    IngestFailed,
    InputError,
    ProvenanceError,
    QueryError,
    StoreError,
    StoreLockedError,
)
from curator.core.provenance import ProvenanceSpec
from curator.core.version import __version__
from curator.ingest.tag import TagResult, tag

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
    "open_store",
    "tag",
]
