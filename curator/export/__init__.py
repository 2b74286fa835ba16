"""Exports: an assembled set's provenance in the formats others read.

- :mod:`~curator.export.croissant`: Croissant 1.1 JSON-LD with RAI 1.0 and per-record PROV-O;
- :mod:`~curator.export.card`: a Hugging Face dataset card;
- :mod:`~curator.export.openlineage`: an OpenLineage run event (written, or posted);
- :mod:`~curator.export.summary`: a draft of Section 2 of the AI Act training-content summary.

Each reads the facts of a set once (:mod:`~curator.export.facts`: the manifest and the set's
own files; the store only for what its catalog alone knows), and needs no store when the set is
named by its path (:mod:`~curator.export.target`).
"""
