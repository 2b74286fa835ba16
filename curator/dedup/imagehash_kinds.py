"""The image hashes `curator dedup --image-hash` can cluster by, computed through imagehash.

| kind | imagehash function | bits | index value |
| --- | --- | --- | --- |
| ``phash`` (default) | ``phash`` — computed by :mod:`curator.dedup.phash`, the same bits, faster | 64 | int64 |
| ``dhash`` | ``dhash`` (gradient signs of a 9 × 8 grey image) | 64 | int64 |
| ``whash`` | ``whash`` (Haar wavelet, low band > median) | 64 | int64 |
| ``average`` | ``average_hash`` (8 × 8 grey pixels > their mean) | 64 | int64 |
| ``colorhash`` | ``colorhash(binbits=3)`` (black, grey and 12 hue fractions) | 42 | int64 |
| ``crop-resistant`` | ``crop_resistant_hash`` (a 64-bit dhash per bright/dark segment) | 64 per segment | list of int64 |

Two images are copies when their hashes differ in at most `hamming` bits (of the kind's bits).
For ``crop-resistant`` the rule is imagehash's ``ImageMultiHash.matches(region_cutoff=1,
hamming_cutoff=hamming)`` over the informative segments: the images are copies when any
segment of one is within `hamming` bits of any segment of the other. Candidates come from
bands of the hashes (two hashes within k bits agree on one of k + 1 bands), one band row per
segment for ``crop-resistant``.

Hashes that describe no image are left out of clustering, because they would join unrelated
images: for the median-split kinds (``phash``, ``whash``) a hash with far fewer or more than
half its bits set (:func:`curator.dedup.phash.informative`); for ``dhash``, ``average`` and each
``crop-resistant`` segment a hash within `hamming` bits of all-zeros or all-ones (a flat image or
region: imagehash gives ``0000000000000000`` for a flat segment); for every kind an image that
does not decode. ``colorhash`` has no such case beyond that: a colour distribution is what it
describes, so it clusters images of like colours, not only copies (see ``bench/dedup.py``).

Each kind keeps its own index under ``STORE/indexes/<method>-<bits>``, so running one kind does
not discard another's, and each kind's clusters are their own ledger file of ``duplicates``
(method = the kind, ``crop_resistant`` for ``crop-resistant``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from curator.dedup.candidates import DedupError, PHashVerifier

#: What an undecodable image is stored as: 0 for the 64-bit kinds (no bit set: not informative),
#: -1 (all 64 bits, which no 42-bit hash has) for colorhash, no segment for crop-resistant.
_UNDECODABLE_COLORHASH = -1
COLORHASH_BINBITS = 3


@dataclass(frozen=True)
class ImageHashKind:
    """One image-hash kind: its CLI name, its ledger/index method name, its bits per hash."""

    name: str
    method: str
    bits: int
    #: median-split (about half the bits set), flat-sensitive, distribution, or multi-segment
    rule: str

    @property
    def index_name(self) -> str:
        """The index directory under ``STORE/indexes/`` (``phash-64`` as before kinds)."""
        return f"{self.method}-{self.bits}"

    @property
    def multi(self) -> bool:
        return self.rule == "segments"

    @property
    def value_type(self) -> pa.DataType:
        return pa.list_(pa.int64()) if self.multi else pa.int64()


KINDS: dict[str, ImageHashKind] = {
    kind.name: kind
    for kind in (
        ImageHashKind("phash", "phash", 64, "median"),
        ImageHashKind("dhash", "dhash", 64, "flat"),
        ImageHashKind("whash", "whash", 64, "median"),
        ImageHashKind("average", "average", 64, "flat"),
        ImageHashKind("colorhash", "colorhash", 14 * COLORHASH_BINBITS, "distribution"),
        ImageHashKind("crop-resistant", "crop_resistant", 64, "segments"),
    )
}
DEFAULT_IMAGE_HASH = "phash"
#: Method name → kind, for the signature tasks (which carry the method).
_BY_METHOD = {kind.method: kind for kind in KINDS.values()}


def image_hash_kind(name: str) -> ImageHashKind:
    """The kind called `name` (a CLI name such as ``crop-resistant``, or its method name).

    Raises:
        DedupError: no such kind.
    """
    kind = KINDS.get(name) or _BY_METHOD.get(name)
    if kind is None:
        raise DedupError(
            f"unknown image hash `{name}`",
            "use one of " + ", ".join(f"`{k}`" for k in KINDS) + ' (Python: `image_hash="dhash"`)',
        )
    return kind


def is_image_method(method: str) -> bool:
    return method in _BY_METHOD


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.reshape(-1):
        value = (value << 1) | int(bool(bit))
    return value


def _as_int64(value: int) -> int:
    """An unsigned 64-bit value as the int64 of the same bits (the index stores int64)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _decoded(data: bytes | None) -> Any:
    """The first frame of encoded image bytes as a loaded ``PIL.Image``, or None."""
    from PIL import Image

    from curator.ingest.readers.images import without_png_text

    if not data:
        return None
    try:
        image = Image.open(io.BytesIO(without_png_text(data)))
        image.load()
        return image
    except Exception:
        return None


def _hasher(kind: ImageHashKind) -> Callable[[Any], Any]:
    import imagehash

    hashers: dict[str, Callable[[Any], Any]] = {
        "phash": imagehash.phash,
        "dhash": imagehash.dhash,
        "whash": imagehash.whash,
        "average": imagehash.average_hash,
        "colorhash": lambda image: imagehash.colorhash(image, binbits=COLORHASH_BINBITS),
        "crop_resistant": imagehash.crop_resistant_hash,
    }
    return hashers[kind.method]


def hash_value(kind: ImageHashKind, data: bytes | None) -> int | list[int]:
    """The index value of one encoded image: the hash's bits as an int64 (most significant bit
    first, ``int(str(h), 16)``), or for ``crop-resistant`` one per segment in imagehash's order.
    An undecodable image gets the kind's undecodable value."""
    image = _decoded(data)
    if image is None:
        if kind.multi:
            return []
        return _UNDECODABLE_COLORHASH if kind.method == "colorhash" else 0
    with image:
        hashed = _hasher(kind)(image)
    if kind.multi:
        return [_as_int64(_bits_to_int(segment.hash)) for segment in hashed.segment_hashes]
    return _as_int64(_bits_to_int(hashed.hash))


def index_values(method: str, contents: pa.Array) -> pa.Array:
    """The index values of the encoded images `contents` for the kind of `method` (one thread
    per core: Pillow and numpy release the GIL for part of the work)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    kind = image_hash_kind(method)
    images = contents.to_pylist()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        values = list(pool.map(lambda data: hash_value(kind, data), images))
    return pa.array(values, kind.value_type)


def _not_flat(hashes: np.ndarray, bits: int, hamming: int) -> np.ndarray:
    count = np.bitwise_count(hashes.astype(np.uint64)).astype(np.int64)
    return (count > hamming) & (count < bits - hamming)


def informative(kind: ImageHashKind, hashes: np.ndarray, hamming: int) -> np.ndarray:
    """Which hashes (uint64; segments for ``crop-resistant``) take part in clustering; see the
    module docstring for the rule of each kind."""
    from curator.dedup import phash

    if kind.rule == "median":
        return phash.informative(hashes)
    if kind.rule == "distribution":
        return hashes.astype(np.int64) != _UNDECODABLE_COLORHASH
    return _not_flat(hashes, kind.bits, hamming)


@dataclass(frozen=True)
class HammingVerifier(PHashVerifier):
    """Keeps a pair when its hashes of `bits` bits differ in at most `hamming` bits; the
    similarity is the share of equal bits."""

    bits: int = 64

    def __call__(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        distance = np.bitwise_count(self.hashes[a] ^ self.hashes[b]).astype(np.int64)
        return distance <= self.hamming, 1.0 - distance / float(self.bits)


def verifier(kind: ImageHashKind, hashes: np.ndarray, hamming: int) -> PHashVerifier:
    """The pair verifier of `kind` (pHash's own for the 64-bit kinds)."""
    if kind.bits == 64:
        return PHashVerifier(hashes, hamming)
    return HammingVerifier(hashes, hamming, kind.bits)


def image_pairs(
    a: np.ndarray, b: np.ndarray, similarity: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct pairs of different images (smaller first), each with its best similarity."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    other = lo != hi
    lo, hi, similarity = lo[other], hi[other], np.asarray(similarity)[other]
    if not len(lo):
        return lo, hi, similarity
    order = np.lexsort((-similarity, hi, lo))
    lo, hi, similarity = lo[order], hi[order], similarity[order]
    first = np.concatenate([[True], (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])])
    return lo[first], hi[first], similarity[first]
