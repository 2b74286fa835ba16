"""Images that must neither hang nor be lost: animated frame bombs, PNG text chunks past Pillow's
1 MB limit (a ComfyUI workflow), and oversized chunks listed as metadata problems."""

from __future__ import annotations

import io
import json
import zlib

import pytest
from PIL import Image, PngImagePlugin

import curator
from curator.dedup.phash import phash_bytes
from curator.infer.signals import MAX_CHUNK_BYTES, read_signals
from curator.ingest.readers.images import ImageRejected, inspect_image, png_text, without_png_text


def apng(frames: int, size: tuple[int, int] = (40, 30)) -> bytes:
    """An animated PNG whose frames all differ (Pillow merges equal neighbours)."""
    images = [Image.new("RGB", size, (i % 256, 255 - i % 256, i // 256)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PNG", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def png_with_text(key: str, value: str, chunk: str, color=(30, 60, 90)) -> bytes:
    info = PngImagePlugin.PngInfo()
    if chunk == "zTXt":
        info.add_text(key, value, zip=True)
    elif chunk == "iTXt":
        info.add_itxt(key, value, zip=True)
    else:
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), color).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def plain_png(color=(30, 60, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), color).save(buffer, format="PNG")
    return buffer.getvalue()


#: A 2.4 MB ComfyUI workflow, as in the report: compresses to a few KB.
WORKFLOW = json.dumps({"nodes": [{"type": "KSampler", "widgets": "x" * 1000}] * 2400})


# -- 7: animated frame bombs --------------------------------------------------------------------


def test_an_animated_png_is_bounded_by_its_total_decoded_pixels():
    data = apng(200)  # 200 frames of 40 × 30: 1,200 pixels each, 240,000 in all
    assert len(data) < 100_000
    with pytest.raises(ImageRejected) as caught:
        inspect_image(data, max_pixels=100_000)
    assert caught.value.code == "image_too_large"
    assert caught.value.reason == (
        "animated image of 200 frames of 40×30 decodes 240,000 pixels, over the limit of 100,000 "
        "(decompression-bomb guard, every frame counted); raise it with --max-image-pixels"
    )
    # under a limit that covers every frame it is decoded and hashed, frames included
    info = inspect_image(data, max_pixels=240_000)
    assert (info.width, info.height, info.format) == (40, 30, "png")
    assert info.content_hash != inspect_image(apng(199), max_pixels=240_000).content_hash


def test_a_frame_bomb_is_a_counted_reject_at_ingest(tmp_path):
    store = curator.init_store(tmp_path / "store")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(apng(300))
    (folder / "still.png").write_bytes(plain_png())
    result = store.ingest([folder], source="web", origin="unknown", max_image_pixels=200_000)
    assert (result.rows_read, result.ingested, result.rejected) == (2, 1, 1)
    assert result.reject_codes == {"image_too_large": 1}


# -- 8: PNG text chunks over Pillow's 1 MB limit ------------------------------------------------


@pytest.mark.parametrize("chunk", ["zTXt", "iTXt"])
def test_a_large_compressed_workflow_keeps_the_image_and_is_read(tmp_path, chunk):
    data = png_with_text("workflow", WORKFLOW, chunk)
    assert len(WORKFLOW) > 2_400_000 and len(data) < 50_000
    # the pixels are those of the same image without the chunk
    info = inspect_image(data, max_pixels=1_000)
    assert info.content_hash == inspect_image(plain_png(), max_pixels=1_000).content_hash
    assert phash_bytes(data) == phash_bytes(plain_png())
    (signal,) = read_signals(data)[0]
    assert (signal.evidence, signal.origin, signal.reason) == (
        "generator-metadata",
        "synthetic",
        "generator metadata: ComfyUI `workflow`",
    )
    store = curator.init_store(tmp_path / "store")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "comfy.png").write_bytes(data)
    ingested = store.ingest([folder], source="web", origin="unknown")
    assert (ingested.ingested, ingested.rejected) == (1, 0)
    result = store.infer()
    assert result.by_evidence == {"generator-metadata": 1}
    assert (result.unreadable, result.problems) == (0, [])


@pytest.mark.parametrize("chunk", ["tEXt", "zTXt", "iTXt"])
def test_a_chunk_over_the_metadata_limit_is_a_listed_problem(tmp_path, chunk):
    huge = "y" * (MAX_CHUNK_BYTES + 1)
    data = png_with_text("workflow", huge, chunk)
    reason = f"PNG {chunk} chunk `workflow` is over the limit of 8,388,608 bytes: not read"
    signals, error = read_signals(data)
    assert error is None
    assert [(s.evidence, s.origin, s.confidence, s.reason) for s in signals] == [
        ("generator-metadata", "unknown", 0.0, reason)
    ]
    store = curator.init_store(tmp_path / "store")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "big.png").write_bytes(data)
    assert store.ingest([folder], source="web", origin="unknown").ingested == 1
    result = store.infer()
    assert result.relabelled == 0
    assert result.problems == [{"sample_id": "web/big.png", "reason": reason}]


def test_png_text_reads_each_chunk_under_the_limit():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "Steps: 20, Sampler: Euler")
    info.add_text("prompt", '{"1": {}}', zip=True)
    info.add_itxt("Comment", "caf\u00e9", zip=False)
    info.add_itxt("workflow", "z" * 101, zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
    data = buffer.getvalue()
    assert png_text(data, limit=100) == (
        {"parameters": "Steps: 20, Sampler: Euler", "prompt": '{"1": {}}', "Comment": "caf\u00e9"},
        ["PNG iTXt chunk `workflow` is over the limit of 100 bytes: not read"],
    )
    stripped = without_png_text(data)
    assert png_text(stripped, limit=100) == ({}, [])
    assert Image.open(io.BytesIO(stripped)).tobytes() == Image.open(io.BytesIO(data)).tobytes()
    # a text chunk that is not zlib data is named, not raised
    bad = data.replace(zlib.compress(b'{"1": {}}'), b"not zlib at all", 1)
    assert png_text(bad, limit=100)[1][0] == "PNG zTXt chunk `prompt` cannot be inflated: not read"
    # not a PNG: unchanged, no text
    assert without_png_text(b"GIF89a...") == b"GIF89a..." and png_text(b"xyz", 10) == ({}, [])


def test_pillows_own_text_limit_is_left_as_it_was():
    assert PngImagePlugin.MAX_TEXT_CHUNK == 1024 * 1024
    read_signals(png_with_text("workflow", WORKFLOW, "zTXt"))
    assert PngImagePlugin.MAX_TEXT_CHUNK == 1024 * 1024
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"):
        Image.open(io.BytesIO(png_with_text("workflow", WORKFLOW, "zTXt")))
