"""`curator dedup --image-hash`: every imagehash kind clusters edited copies (resized,
recompressed, brightened), through the CLI and Python; each kind keeps its own index and its
own clusters; provenance propagates to copies by every kind; the hash values are imagehash's."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageEnhance

import curator
from curator.dedup import imagehash_kinds
from curator.dedup.candidates import DedupError, index_files
from tests.conftest import invoke

KINDS = ["phash", "dhash", "whash", "average", "colorhash", "crop-resistant"]
METHOD = {kind: kind.replace("-", "_") for kind in KINDS}
#: The copies of each original; the other originals (3..7) have none.
COPIES = {
    "photos/0.png": {"edits/recompressed.jpg", "edits/resized.png"},
    "photos/1.png": {"edits/small.jpg"},
    "photos/2.png": {"edits/brighter.png"},
}


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC))


def _encoded(pixels: np.ndarray, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _images(root: Path) -> tuple[Path, Path]:
    """Eight PNG originals and four edited copies of three of them."""
    originals = [_picture(seed) for seed in range(8)]
    real, edits = root / "real", root / "edits"
    real.mkdir()
    edits.mkdir()
    for i, picture in enumerate(originals):
        (real / f"{i}.png").write_bytes(_encoded(picture))
    first = Image.fromarray(originals[0])
    (edits / "recompressed.jpg").write_bytes(_encoded(originals[0], "JPEG", quality=70))
    (edits / "resized.png").write_bytes(_encoded(np.asarray(first.resize((120, 90)))))
    small = Image.fromarray(originals[1]).resize((80, 60))
    (edits / "small.jpg").write_bytes(_encoded(np.asarray(small), "JPEG", quality=60))
    brighter = ImageEnhance.Brightness(Image.fromarray(originals[2])).enhance(1.15)
    (edits / "brighter.png").write_bytes(_encoded(np.asarray(brighter)))
    return real, edits


def _store(root: Path, edits_origin: str = "synthetic") -> curator.Store:
    real, edits = _images(root)
    store = curator.init_store(root / "store")
    store.ingest([real], source="photos", origin="real")
    if edits_origin == "synthetic":
        store.ingest([edits], source="edits", origin="synthetic", generation=1)
    else:
        store.ingest([edits], source="edits", origin=edits_origin)
    return store


def _clusters(store: curator.Store, method: str) -> list[list[str]]:
    rows = store.sql(
        "SELECT list(sample_id ORDER BY sample_id) AS members FROM duplicates "
        f"WHERE method = '{method}' GROUP BY cluster_id ORDER BY members"
    ).to_pylist()
    return [row["members"] for row in rows]


def _recalled(clusters: list[list[str]]) -> bool:
    """Every copy is in the cluster of its original."""
    return all(
        any(original in c and copies <= set(c) for c in clusters)
        for original, copies in COPIES.items()
    )


@pytest.fixture
def store(tmp_path: Path) -> curator.Store:
    return _store(tmp_path)


def test_dhash_on_the_command_line_clusters_the_copies(runner, store):
    env = {"CURATOR_STORE": store.root}
    result = invoke(runner, "dedup", "--no-text", "--image-hash", "dhash", env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "  images (dhash, 64 bits): Hamming distance ≤ 8 (9 bands)"
    assert lines[2].startswith("    12 distinct contents (12 newly hashed), ")
    assert lines[2].endswith(" verified; 3 clusters, 4 samples not kept")
    assert _clusters(store, "dhash") == sorted(
        sorted({original} | copies) for original, copies in COPIES.items()
    )
    kept = store.sql("SELECT sample_id FROM duplicates WHERE kept ORDER BY 1").to_pylist()
    assert [row["sample_id"] for row in kept] == sorted(COPIES)
    ids = store.sql("SELECT DISTINCT cluster_id FROM duplicates").to_pylist()
    assert all(row["cluster_id"].startswith("dhash:") for row in ids)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_clusters_the_copies_from_python_and_the_cli(runner, tmp_path, kind):
    store = _store(tmp_path)
    (method_result,) = store.dedup(text=False, image_hash=kind).methods
    assert method_result.method == METHOD[kind]
    assert method_result.parameters["kind"] == kind
    assert method_result.contents == 12 and method_result.computed == 12
    python_clusters = _clusters(store, METHOD[kind])
    assert _recalled(python_clusters)
    if kind not in ("colorhash", "crop-resistant"):
        # the 64-bit hashes find exactly the copies; colorhash (the colours of the random
        # pictures are alike) and crop-resistant (their segments are alike) join more
        assert len(python_clusters) == 3
    env = {"CURATOR_STORE": store.root}
    result = invoke(runner, "dedup", "--no-text", "--image-hash", kind, "--json", env=env)
    assert result.exit_code == 0, result.output
    (data,) = json.loads(result.output)["methods"]
    assert (data["method"], data["computed"], data["contents"]) == (METHOD[kind], 0, 12)
    assert _clusters(store, METHOD[kind]) == python_clusters


def test_the_summary_names_every_kind(runner, store):
    env = {"CURATOR_STORE": store.root}
    expected = {
        "phash": "images (pHash, 64 bits)",
        "whash": "images (whash, 64 bits)",
        "average": "images (average, 64 bits)",
        "colorhash": "images (colorhash, 42 bits)",
        "crop-resistant": "images (crop-resistant, 64 bits per segment)",
    }
    for kind, words in expected.items():
        result = invoke(runner, "dedup", "--no-text", "--image-hash", kind, env=env)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[1].startswith(f"  {words}: Hamming distance ≤ 8")


def test_each_kind_keeps_its_index_and_its_clusters(store):
    indexes = Path(store.root) / "indexes"
    first = store.dedup(text=False).methods[0]
    phash_files = index_files(str(indexes / "phash-64"))
    assert (first.method, first.computed, len(phash_files)) == ("phash", 12, 1)
    second = store.dedup(text=False, image_hash="dhash").methods[0]
    assert (second.method, second.computed) == ("dhash", 12)
    assert sorted(p.name for p in indexes.iterdir()) == ["dhash-64", "phash-64"]
    third = store.dedup(text=False, image_hash="phash").methods[0]
    assert (third.computed, third.contents, third.clusters) == (0, 12, 3)
    assert index_files(str(indexes / "phash-64")) == phash_files  # reused, nothing added
    assert len(index_files(str(indexes / "dhash-64"))) == 1
    contents = store.sql("SELECT DISTINCT content_hash FROM samples").column(0).to_pylist()
    for name in ("phash-64", "dhash-64"):
        (path,) = index_files(str(indexes / name))
        assert sorted(pq.read_table(path).column("content_hash").to_pylist()) == sorted(contents)
    methods = store.sql(
        "SELECT method, count(*) AS n FROM duplicates GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert methods == [{"method": "dhash", "n": 7}, {"method": "phash", "n": 7}]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_propagates_provenance_to_copies(tmp_path, kind):
    store = _store(tmp_path, edits_origin="unknown")
    store.dedup(text=False, image_hash=kind)
    store.infer()
    rows = store.sql(
        "SELECT sample_id, origin, generation, origin_evidence FROM samples "
        "WHERE source = 'edits' ORDER BY sample_id"
    ).to_pylist()
    assert [(r["origin"], r["generation"], r["origin_evidence"]) for r in rows] == [
        ("real", 0, "near-duplicate")
    ] * 4


def test_an_unknown_kind_is_refused(runner, store):
    env = {"CURATOR_STORE": store.root}
    result = invoke(runner, "dedup", "--image-hash", "bhash", env=env)
    assert result.exit_code == 2
    assert (
        "Error: Invalid value for '--image-hash': 'bhash' is not one of 'phash', 'dhash', "
        "'whash', 'average', 'colorhash', 'crop-resistant'." in result.output
    )
    with pytest.raises(DedupError) as error:
        store.dedup(image_hash="bhash")
    assert str(error.value) == (
        "unknown image hash `bhash`\nHint: use one of `phash`, `dhash`, `whash`, `average`, "
        '`colorhash`, `crop-resistant` (Python: `image_hash="dhash"`)'
    )


def test_hash_values_are_imagehash_values(tmp_path):
    functions = {
        "phash": imagehash.phash,
        "dhash": imagehash.dhash,
        "whash": imagehash.whash,
        "average": imagehash.average_hash,
        "colorhash": lambda image: imagehash.colorhash(image, binbits=3),
    }
    for seed in range(6):
        data = _encoded(_picture(seed), "JPEG", quality=80)
        image = Image.open(io.BytesIO(data))
        for kind, function in functions.items():
            value = imagehash_kinds.hash_value(imagehash_kinds.KINDS[kind], data)
            assert isinstance(value, int)
            assert value % (1 << 64) == int(str(function(image)), 16), kind
        segments = imagehash_kinds.hash_value(imagehash_kinds.KINDS["crop-resistant"], data)
        expected = imagehash.crop_resistant_hash(image).segment_hashes
        assert [v % (1 << 64) for v in segments] == [int(str(h), 16) for h in expected]
    assert imagehash_kinds.hash_value(imagehash_kinds.KINDS["dhash"], b"not an image") == 0
    assert imagehash_kinds.hash_value(imagehash_kinds.KINDS["colorhash"], None) == -1
    assert imagehash_kinds.hash_value(imagehash_kinds.KINDS["crop-resistant"], b"x") == []


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_ray_gives_the_local_clusters_for_the_kinds(tmp_path, monkeypatch):
    """On Ray the hashes are computed in tasks and the bands (segments' bands for
    crop-resistant) exchanged, grouped and verified in tasks: the same clusters."""
    import curator.dedup.candidates
    import curator.dedup.signatures
    from curator.engine.ray import RayEngine

    monkeypatch.setattr(curator.dedup.signatures, "SMALL_WORK_BYTES", 0)
    monkeypatch.setattr(curator.dedup.candidates, "BAND_FILE_ROWS", 10)
    (tmp_path / "local").mkdir()
    local_store = _store(tmp_path / "local")
    ray_store = curator.init_store(tmp_path / "ray-store")
    ray_store.ingest([tmp_path / "local" / "real"], source="photos", origin="real")
    ray_store.ingest(
        [tmp_path / "local" / "edits"], source="edits", origin="synthetic", generation=1
    )
    with RayEngine() as engine:
        for kind in ("dhash", "colorhash", "crop-resistant"):
            here = local_store.dedup(text=False, image_hash=kind).methods[0]
            there = ray_store.dedup(text=False, image_hash=kind, engine=engine).methods[0]
            assert (there.contents, there.verified_pairs, there.clusters) == (
                here.contents,
                here.verified_pairs,
                here.clusters,
            ), kind
            assert _clusters(ray_store, METHOD[kind]) == _clusters(local_store, METHOD[kind])
