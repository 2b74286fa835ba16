"""Decoding and validating images: the pixel hash, size and format, or a reason to reject."""

from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import xxhash

from curator.core.hashing import image_pixels_hash

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")

#: Modes whose pixels fit RGBA without loss: hashed as RGBA, so a lossless re-encoding in another
#: of these modes is an exact duplicate. Other modes (16-bit, 32-bit integer and float, …) are
#: hashed on their own pixel bytes, with the mode's name.
_RGBA_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"})


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Chunks that hold text (metadata): they never change pixels.
PNG_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(chunk type, start, end)`` of each whole chunk (length, type, data, CRC) of a PNG, in
    file order; stops at the first chunk that runs past the end of `data` (truncated files are
    left for the decoder to judge). Nothing for data that is not a PNG."""
    if not data.startswith(PNG_SIGNATURE):
        return
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 12 + length
        if end > len(data):
            return
        yield bytes(data[position + 4 : position + 8]), position, end
        position = end


def without_png_text(data: bytes) -> bytes:
    """`data` without its PNG text chunks (``tEXt``, ``zTXt``, ``iTXt``), for decoding pixels:
    Pillow inflates every compressed text chunk while it opens a PNG and refuses the whole file
    when one inflates past ``PngImagePlugin.MAX_TEXT_CHUNK`` (1 MB), so a valid image carrying a
    large ComfyUI workflow would read as corrupt. The limit stays as it is; the text is read,
    under a limit of its own, by :func:`png_text`. Other data is returned unchanged."""
    kept: list[bytes] = []
    last = len(PNG_SIGNATURE)
    removed = False
    for chunk_type, start, end in png_chunks(data):
        if chunk_type in PNG_TEXT_CHUNKS:
            kept.append(data[last:start])
            last = end
            removed = True
    if not removed:
        return data
    kept.insert(0, data[: len(PNG_SIGNATURE)])
    kept.append(data[last:])
    return b"".join(kept)


def _inflate(compressed: bytes, limit: int) -> bytes | None:
    """The inflated bytes, or ``None`` when they would be more than `limit` bytes (only
    `limit` + 1 bytes are ever produced)."""
    inflater = zlib.decompressobj()
    plain = inflater.decompress(compressed, limit + 1)
    if len(plain) > limit or inflater.unconsumed_tail:
        return None
    return plain


def png_text(data: bytes, limit: int) -> tuple[dict[str, str], list[str]]:
    """The text chunks of a PNG, keyed as Pillow keys them (``tEXt``/``zTXt`` as Latin-1,
    ``iTXt`` as UTF-8; a later chunk of the same key wins), each read only if its text is at
    most `limit` bytes, and a reason for every chunk that was not read (over the limit, not
    inflatable, badly formed). Empty for data that is not a PNG."""
    texts: dict[str, str] = {}
    problems: list[str] = []
    for chunk_type, start, end in png_chunks(data):
        if chunk_type not in PNG_TEXT_CHUNKS:
            continue
        body = data[start + 8 : end - 4]
        key_bytes, separator, rest = body.partition(b"\0")
        key = key_bytes.decode("latin-1")
        name = f"PNG {chunk_type.decode()} chunk `{key}`"
        if not separator or not key:
            problems.append(f"{name} is badly formed: not read")
            continue
        raw: bytes | None
        if chunk_type == b"tEXt":
            raw = rest if len(rest) <= limit else None
        elif chunk_type == b"zTXt":
            if rest[:1] != b"\0":
                problems.append(f"{name} uses an unknown compression method: not read")
                continue
            try:
                raw = _inflate(rest[1:], limit)
            except zlib.error:
                problems.append(f"{name} cannot be inflated: not read")
                continue
        else:
            compressed, method, rest = rest[:1] == b"\1", rest[1:2], rest[2:]
            _language, _, rest = rest.partition(b"\0")
            _translated, separator, raw = rest.partition(b"\0")
            if not separator or (compressed and method != b"\0"):
                problems.append(f"{name} is badly formed: not read")
                continue
            if compressed:
                try:
                    raw = _inflate(raw, limit)
                except zlib.error:
                    problems.append(f"{name} cannot be inflated: not read")
                    continue
            elif len(raw) > limit:
                raw = None
        if raw is None:
            problems.append(f"{name} is over the limit of {limit:,} bytes: not read")
            continue
        if chunk_type == b"iTXt":
            try:
                texts[key] = raw.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"{name} is not UTF-8: not read")
        else:
            texts[key] = raw.decode("latin-1")
    return texts, problems


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

    `max_pixels` bounds the pixels decoded in all: width × height × frames (an animated PNG or
    WebP decodes every frame onto the full canvas, and its content hash covers every frame). The
    text chunks of a PNG are not read here (they hold metadata, never pixels; see
    :func:`without_png_text`), so a large ComfyUI workflow does not make an image corrupt.

    Raises:
        ImageRejected: ``empty_content`` for no bytes, ``image_too_large`` when width × height,
            or width × height × frames for an animated image, is over `max_pixels` (checked from
            the header, before decoding: the decompression-bomb guard), ``corrupt_image`` when
            Pillow cannot identify or fully decode it (truncated files included).
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
            with Image.open(io.BytesIO(without_png_text(data))) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        "image_too_large",
                        f"image is {width}×{height} = {width * height:,} pixels, over the limit of "
                        f"{max_pixels:,} (decompression-bomb guard); raise it with --max-image-pixels",
                    )
                frames = int(getattr(image, "n_frames", 1) or 1)
                if frames > 1 and frames * width * height > max_pixels:
                    raise ImageRejected(
                        "image_too_large",
                        f"animated image of {frames:,} frames of {width}×{height} decodes "
                        f"{frames * width * height:,} pixels, over the limit of {max_pixels:,} "
                        "(decompression-bomb guard, every frame counted); raise it with "
                        "--max-image-pixels",
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
