"""Decoding and validating images: the pixel hash, size and format, or a reason to reject."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import xxhash

from curator.hashing import image_pixels_hash

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")

#: Modes whose pixels fit RGBA without loss: hashed as RGBA, so a lossless re-encoding in another
#: of these modes is an exact duplicate. Other modes (16-bit, 32-bit integer and float, …) are
#: hashed on their own pixel bytes, with the mode's name.
_RGBA_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"})


def _frame_bytes(frame: Any) -> bytes:
    if frame.mode in _RGBA_MODES:
        return bytes(frame.convert("RGBA").tobytes())
    return frame.mode.encode() + b":" + bytes(frame.tobytes())


def _pixels_hash(image: Any) -> str:
    """`content_hash` of a loaded image: every frame of an animated image, high-bit-depth pixels
    unclipped; a single frame of an RGBA-compatible mode hashes as before (its RGBA pixels)."""
    from PIL import ImageSequence

    width, height = image.size
    frames = getattr(image, "n_frames", 1)
    if frames <= 1:
        if image.mode in _RGBA_MODES:
            return image_pixels_hash((width, height, image.convert("RGBA").tobytes()))
        hasher = xxhash.xxh3_128()
        hasher.update(f"{image.mode}:{width}x{height}:".encode())
        hasher.update(image.tobytes())
        return hasher.hexdigest()
    hasher = xxhash.xxh3_128()
    hasher.update(f"RGBA:{width}x{height}:frames={frames}:".encode())
    for frame in ImageSequence.Iterator(image):
        frame.load()
        hasher.update(f"{frame.size[0]}x{frame.size[1]}:".encode())
        hasher.update(_frame_bytes(frame))
    return hasher.hexdigest()


@dataclass(frozen=True)
class ImageInfo:
    content_hash: str
    width: int
    height: int
    format: str


class ImageRejected(Exception):
    """An image that cannot be ingested: ``code`` is the reject code, the message the reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Decode `data` fully and hash its pixels.

    Raises:
        ImageRejected: ``empty_content`` for no bytes, ``image_too_large`` when width × height is
            over `max_pixels` (checked from the header, before decoding: the decompression-bomb
            guard), ``corrupt_image`` when Pillow cannot identify or fully decode it (truncated
            files included).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageRejected("empty_content", "empty image (0 bytes)")
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        # Our own limit below replaces Pillow's global one (which would refuse images over twice
        # its default even when --max-image-pixels allows them); its warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = None
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        "image_too_large",
                        f"image is {width}×{height} = {width * height:,} pixels, over the limit of "
                        f"{max_pixels:,} (decompression-bomb guard); raise it with --max-image-pixels",
                    )
                image_format = (image.format or "unknown").lower()
                image.load()
                content_hash = _pixels_hash(image)
        except ImageRejected:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageRejected("image_too_large", f"decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise ImageRejected("corrupt_image", "not an image that Pillow can identify") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected("corrupt_image", f"cannot decode image: {exc}") from exc
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
    return ImageInfo(content_hash, width, height, image_format)
