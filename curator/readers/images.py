"""Decoding and validating images: the pixel hash, size and format, or a reason to reject."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from curator.hashing import image_pixels_hash

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")


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
    with warnings.catch_warnings():
        # Our own limit below replaces Pillow's global one; its warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
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
                rgba = image.convert("RGBA")
                content_hash = image_pixels_hash((width, height, rgba.tobytes()))
        except ImageRejected:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageRejected("image_too_large", f"decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise ImageRejected("corrupt_image", "not an image that Pillow can identify") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected("corrupt_image", f"cannot decode image: {exc}") from exc
    return ImageInfo(content_hash, width, height, image_format)
