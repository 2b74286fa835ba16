"""Loading an assembled set as a Hugging Face dataset.

A set is its output shards (``data/train-00000-of-00004.parquet``, …), with format ``tokens`` their
token arrays (``tokens/…``, read with numpy, not here), plus `manifest.json`. :func:`load_dataset` checks the shards against
the manifest's checksums, then hands them, in manifest order, to ``datasets.load_dataset``
("parquet" or "json"), so the result is an ordinary ``datasets.Dataset`` (memory-mapped Arrow in
the datasets cache) or, streaming, an ``IterableDataset`` whose shards are the output shards.
Every output shard holds the policy's mix (within one sample of rounding), and
``datasets.distributed.split_dataset_by_node`` gives each rank whole shards when their number is
a multiple of the world size, so each rank sees the mix; ``state_dict()`` resumes exactly, since
the datasets iterator counts shards and rows within a shard.

``datasets`` is an optional dependency (``pip install 'curator[hf]'``), imported only here.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from curator.assembly.manifest import Manifest, ManifestError
from curator.core.errors import CuratorError, InputError

if TYPE_CHECKING:
    import datasets

INSTALL_HINT = "pip install 'curator[hf]'"

#: The datasets builder that reads each output file type.
_BUILDERS = {".parquet": "parquet", ".jsonl": "json"}


def load_dataset(
    manifest_or_dir: str | os.PathLike[str],
    *,
    streaming: bool = False,
    verify: bool = True,
    columns: Sequence[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Load an assembled set as a Hugging Face dataset, rows in manifest order, with the
    provenance columns (`sample_id`, `origin`, `generation`, …) and their types.

    Args:
        manifest_or_dir: the set's `manifest.json`, the directory holding it, or a URL
            (``s3://bucket/prefix`` or ``…/manifest.json``; credentials from the environment).
            A set moved or copied elsewhere is read beside its manifest.
        streaming: return an ``IterableDataset`` with one shard per output shard, in manifest
            order, instead of a ``Dataset``. Pass it to
            ``datasets.distributed.split_dataset_by_node`` to give each rank whole shards.
        verify: first recompute every output shard's checksum against the manifest.
        columns: keep only these columns (all by default).
        cache_dir: where ``datasets`` keeps its Arrow copy of a non-streamed set (default: the
            datasets cache, ``~/.cache/huggingface/datasets``).

    Returns:
        A ``datasets.Dataset``, or a ``datasets.IterableDataset`` when `streaming`.

    Raises:
        CuratorError: ``datasets`` is not installed (the hint gives the install line).
        ManifestError: no readable manifest, a shard or token array missing or changed (the
            message names it), or output shards that are neither Parquet nor JSON Lines.
        InputError: a name in `columns` that the set lacks.

    >>> import curator
    >>> train = curator.load_dataset("train/gen-2")                      # doctest: +SKIP
    >>> stream = curator.load_dataset("train/gen-2", streaming=True)     # doctest: +SKIP
    >>> stream.num_shards                                                # doctest: +SKIP
    8
    """
    hf = _datasets()
    manifest = _manifest_of(manifest_or_dir)
    where = str(manifest.path or manifest_or_dir)
    if verify:
        problems = manifest.verify()
        if problems:
            listed = "; ".join(problems[:5]) + (
                f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
            )
            raise ManifestError(
                f"the set of `{where}` does not match its manifest: {listed}",
                "copy the set again from where it was assembled, or pass `verify=False` "
                "to load it as it is",
            )
    locations = manifest.output_locations()
    if not locations:
        raise ManifestError(f"the set of `{where}` has no output shards")
    builder = _builder_of(locations, where)
    options: dict[str, Any] = {}
    if columns is not None:
        columns = list(columns)
        _check_columns(columns, _columns_of(locations[0], builder), where)
        if builder == "parquet":
            options["columns"] = columns
    dataset = hf.load_dataset(
        builder,
        # Each location is a pattern to datasets: a `[` in a directory name must match itself.
        data_files=[glob.escape(location) for location in locations],
        split="train",
        streaming=streaming,
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        **options,
    )
    if builder == "json":
        dataset = _with_provenance_types(hf, dataset)
        if columns is not None:
            dataset = dataset.select_columns(columns)
    return dataset


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise CuratorError(
            "`curator.load_dataset` needs the Hugging Face `datasets` library, which is not "
            "installed",
            INSTALL_HINT,
        ) from exc
    return datasets


def _manifest_of(source: str | os.PathLike[str]) -> Manifest:
    """The manifest of a set; a local set is read where its manifest.json is, wherever it was
    assembled (a set copied to the training machine: :attr:`Manifest.out_dir`)."""
    return Manifest.load(source)


def _builder_of(locations: list[str], where: str) -> str:
    kinds = {os.path.splitext(location)[1] for location in locations}
    builders = {_BUILDERS.get(kind) for kind in kinds}
    if len(builders) == 1 and None not in builders:
        return str(builders.pop())
    raise ManifestError(
        f"the set of `{where}` has output files of type {', '.join(sorted(kinds))}: "
        "`curator.load_dataset` reads sets of Parquet or JSON Lines shards",
        'read token arrays (`tokens/<shard>.npy`) with `numpy.load(path, mmap_mode="r")` '
        "(see docs/training.md); the Parquet shards of a set are listed as its `outputs`",
    )


def _columns_of(location: str, builder: str) -> list[str]:
    """The columns of one output shard (every shard of a set has the same)."""
    import json

    from curator.core.remote import open_binary

    with open_binary(location) as handle:
        if builder == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(handle).names)
        first = handle.readline()
    return list(json.loads(first)) if first.strip() else []


def _check_columns(columns: list[str], available: list[str], where: str) -> None:
    missing = [name for name in columns if name not in available]
    if missing:
        raise InputError(
            f"`columns`: the set of `{where}` has no column `{missing[0]}`",
            f"choose from {', '.join(f'`{name}`' for name in available)}",
        )


def _with_provenance_types(hf: Any, dataset: Any) -> Any:
    """JSON Lines carry no types: cast the provenance columns back to theirs (a generation is an
    int16, `collected_at` a UTC timestamp, an all-null `model` a string)."""
    from curator.core.schema import provenance_schema

    if dataset.features is None:
        return dataset
    provenance = hf.Features.from_arrow_schema(provenance_schema())
    features = hf.Features(
        {name: provenance.get(name, feature) for name, feature in dataset.features.items()}
    )
    if features == dataset.features:
        return dataset
    return dataset.cast(features)
