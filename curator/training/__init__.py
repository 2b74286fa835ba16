"""The training side: an assembled set handed to a training job.

:func:`load_dataset` reads a set as a Hugging Face ``datasets.Dataset``, or streams it as an
``IterableDataset`` with one dataset shard per output shard, so that
``datasets.distributed.split_dataset_by_node`` gives every data-parallel rank whole shards, each
holding the mix the policy promised. ``docs/training.md`` shows the set going into a ``Trainer``,
a PyTorch ``DataLoader`` and ``numpy.memmap``.
"""

from __future__ import annotations

from curator.training.loader import INSTALL_HINT, load_dataset

__all__ = ["INSTALL_HINT", "load_dataset"]
