"""64-bit perceptual hashes of images, the same bits as ``imagehash.phash``.

imagehash's pHash: grey scale, resized to 32 × 32 (Lanczos), 2-D DCT-II, the top-left 8 × 8
coefficients, each bit ``coefficient > median``. Here the DCT is two small matrix products (only
the 8 rows needed) instead of two full FFT-based transforms, decoding runs on a thread per core
(Pillow releases the GIL), and the bits are packed into one unsigned 64-bit integer, most
significant bit first (``int(str(imagehash.phash(img)), 16)``). tests/test_dedup.py checks the
values against imagehash on the same images.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

SIZE = 32
LOW = 8


@lru_cache(maxsize=1)
def _dct_rows() -> np.ndarray:
    """The first 8 rows of the unnormalised DCT-II matrix of size 32 (scipy.fftpack.dct)."""
    n = np.arange(SIZE)
    k = np.arange(LOW)[:, None]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * SIZE))


_WEIGHTS = (np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def phash_image(image: object) -> int:
    """The pHash of a ``PIL.Image`` as an int."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    grey = image.convert("L").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    c = _dct_rows()
    # Rounded so that float noise (1e-13) reads as the exact zeros an FFT gives on flat images.
    low = np.round(c @ pixels @ c.T, 6)
    bits = (low > np.median(low)).reshape(-1)
    return int(np.sum(_WEIGHTS[bits], dtype=np.uint64))


def phash_bytes(data: bytes | None) -> int | None:
    """The pHash of encoded image bytes (the first frame of an animated image); ``None`` if they
    do not decode."""
    from PIL import Image

    from curator.ingest.readers.images import without_png_text

    if not data:
        return None
    try:
        # Text chunks are no pixels; Pillow would refuse a PNG whose workflow inflates past 1 MB.
        with Image.open(io.BytesIO(without_png_text(data))) as image:
            image.load()
            return phash_image(image)
    except Exception:
        return None


def phashes(
    images: list[bytes | None], threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """pHashes of many encoded images (uint64) and a mask of those that decoded."""
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 2) as pool:
        values = list(pool.map(phash_bytes, images))
    ok = np.array([v is not None for v in values], dtype=bool)
    return np.array([v or 0 for v in values], dtype=np.uint64), ok


def informative(hashes: np.ndarray) -> np.ndarray:
    """Which hashes describe an image. A pHash sets the bits of the coefficients above their
    median, so about 32 of 64; far fewer or more means most coefficients tie (a flat, tiny or
    undecodable image: imagehash gives 0x8000000000000000 for all of them), and such hashes
    would cluster unrelated images."""
    bits = np.bitwise_count(hashes.astype(np.uint64))
    return np.abs(bits.astype(np.int64) - 32) <= 16


def band_values(hashes: np.ndarray, bands: int, bits: int = 64) -> np.ndarray:
    """Split each hash of `bits` bits (64 for pHash; the low bits of the uint64) into `bands`
    contiguous bit ranges (as int64, shape (n, bands)): two hashes within Hamming distance
    bands − 1 agree on at least one (pigeonhole)."""
    edges = np.linspace(0, bits, bands + 1).round().astype(int)
    out = np.empty((len(hashes), bands), np.int64)
    for i in range(bands):
        width = int(edges[i + 1] - edges[i])
        mask = np.uint64((1 << width) - 1)
        out[:, i] = ((hashes >> np.uint64(bits - edges[i + 1])) & mask).astype(np.int64)
    return out
