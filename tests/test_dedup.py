"""Near-duplicates: MinHash signatures (datasketch-compatible), pHash (imagehash-compatible),
clusters in the catalog, and assembly with `dedup.near`."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import imagehash
import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

import curator
from curator.assembly.policy import Policy, PolicyError
from curator.dedup import minhash, phash
from tests.conftest import invoke

FIXTURES = Path(__file__).resolve().parent / "data" / "fixtures"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["word:1", "word:3", "word:5", "char:4"]))
def test_signatures_are_datasketch_minhashes_of_the_shingle_hashes(text, shingling):
    sigs, has = minhash.signatures([text], num_perm=64, seed=1, shingling=shingling)
    hashes = minhash.shingle_hashes(text, shingling)
    assert bool(has[0]) == bool(hashes)
    if hashes:
        reference = MinHash(num_perm=64, seed=1, scheme="affine32", hashfunc=int)
        reference.update_batch(hashes)
        assert sigs[0].tolist() == reference.hashvalues.tolist()


def test_word_shingles_follow_the_normalisation():
    # case, punctuation and Unicode composition do not matter; letters of any script do
    assert minhash.shingle_hashes("Café, au LAIT!", "word:1") == minhash.shingle_hashes(
        "cafe\u0301 au lait", "word:1"
    )
    assert len(minhash.shingle_hashes("a b c d e f g", "word:5")) == 3
    assert len(minhash.shingle_hashes("a b", "word:5")) == 1
    assert minhash.shingle_hashes("... !!", "word:5") == []
    assert len(minhash.shingle_hashes("日本語 テキスト", "word:1")) == 2
    with pytest.raises(ValueError, match="'word5' is not a shingling"):
        minhash.Shingling.parse("word5")


def _document(rng: random.Random, words: int = 120) -> list[str]:
    return [f"w{rng.randrange(5000)}" for _ in range(words)]


def _edit(words: list[str], rate: float, rng: random.Random) -> list[str]:
    out = list(words)
    for i in range(len(out)):
        if rng.random() < rate:
            out[i] = f"x{rng.randrange(10**6)}"
    return out


def _jaccard(a: list[str], b: list[str], k: int = 5) -> float:
    sa = {" ".join(a[i : i + k]) for i in range(len(a) - k + 1)}
    sb = {" ".join(b[i : i + k]) for i in range(len(b) - k + 1)}
    return len(sa & sb) / len(sa | sb)


def test_a_lean_minhash_from_a_signature_serves_lsh_queries():
    rng = random.Random(3)
    docs = [_document(rng) for _ in range(200)]
    sigs, _has = minhash.signatures([" ".join(d) for d in docs])
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, sig in enumerate(sigs):
        lsh.insert(i, minhash.lean_minhash(sig))
    copy = " ".join(_edit(docs[17], 0.01, rng))
    assert lsh.query(minhash.minhash_of(copy)) == [17]
    assert lsh.query(minhash.minhash_of("nothing like any of them at all")) == []


def _distinct_texts(tmp_path: Path) -> int:
    return len(
        {
            json.loads(line)["text"]
            for name in ("real.jsonl", "gen.jsonl")
            for line in (tmp_path / name).read_text().splitlines()
        }
    )


def _text_store(tmp_path: Path) -> tuple[curator.Store, dict[str, float]]:
    """60 real documents; synthetic copies with controlled edit rates; one exact copy."""
    rng = random.Random(11)
    base = [_document(rng) for _ in range(60)]
    (tmp_path / "real.jsonl").write_text(
        "".join(json.dumps({"text": " ".join(d)}) + "\n" for d in base)
    )
    rates = [0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3]
    copies, truth = [], {}
    for i, rate in enumerate(rates * 3):
        edited = _edit(base[i], rate, rng)
        copies.append({"text": " ".join(edited), "id": f"c{i}"})
        truth[f"gen/c{i}"] = _jaccard(base[i], edited)
    (tmp_path / "gen.jsonl").write_text("".join(json.dumps(c) + "\n" for c in copies))
    store = curator.init_store(tmp_path / "store")
    store.ingest([tmp_path / "real.jsonl"], source="web", origin="real")
    store.ingest(
        [tmp_path / "gen.jsonl"], source="gen", origin="synthetic", generation=1, id_column="id"
    )
    return store, truth


def test_text_clusters_find_the_copies_and_keep_the_real_sample(tmp_path):
    store, truth = _text_store(tmp_path)
    result = store.dedup(images=False)
    (text,) = result.methods
    assert (text.parameters["bands"], text.parameters["rows"]) == (12, 10)
    assert text.contents == _distinct_texts(tmp_path)  # exact copies share one content
    assert text.computed == text.contents
    clustered = {
        row["sample_id"]: row
        for row in store.sql("SELECT * FROM duplicates WHERE method = 'minhash'").to_pylist()
    }
    found = {sid for sid in truth if sid in clustered}
    # recall: every copy with true Jaccard >= 0.85 is found; precision: none below 0.5 is
    assert {sid for sid, j in truth.items() if j >= 0.85} <= found
    assert {sid for sid, j in truth.items() if j < 0.5} & found == set()
    # in every cluster the real original is kept and the synthetic copies are not
    for sid in found:
        assert clustered[sid]["kept"] is False
        assert clustered[sid]["cluster_size"] == 2
    kept = store.sql(
        "SELECT s.origin, count(*) AS n FROM duplicates d JOIN samples s USING (sample_id) "
        "WHERE d.kept GROUP BY 1"
    ).to_pylist()
    assert kept == [{"origin": "real", "n": len(found)}]
    exact = store.sql("SELECT similarity FROM duplicates WHERE sample_id = 'gen/c0'").to_pylist()
    assert exact == [{"similarity": 1.0}]
    # a second run computes nothing new and finds the same clusters
    again = store.dedup(images=False).methods[0]
    assert (again.computed, again.clusters) == (0, text.clusters)
    # new content: only it is hashed
    (tmp_path / "more.jsonl").write_text(json.dumps({"text": "a brand new document"}) + "\n")
    store.ingest([tmp_path / "more.jsonl"], source="more", origin="real")
    assert store.dedup(images=False).methods[0].computed == 1


def test_near_dedup_in_assembly(tmp_path):
    store, _truth = _text_store(tmp_path)
    spec = {
        "seed": 1,
        "target": {"rows": 60},
        "constraints": {"max_synthetic_fraction": 1.0},
        "dedup": {"near": True},
        "output": {"shard_rows": 60, "on_shortfall": "shrink"},
    }
    policy = Policy.from_dict(spec)
    with pytest.raises(PolicyError, match="`curator dedup` has not run on this store"):
        store.plan(policy)
    store.dedup(images=False)
    copies = store.sql("SELECT count(*) AS n FROM duplicates WHERE NOT kept").to_pylist()[0]["n"]
    plan = store.plan(policy)
    assert plan.candidates == 60 + 21 - copies
    without = store.plan(Policy.from_dict({**spec, "dedup": {"near": False}}))
    assert without.candidates == _distinct_texts(tmp_path)  # exact copies only


def _png(array: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC))


def test_phash_matches_imagehash():
    files = sorted(FIXTURES.glob("**/*.png")) + sorted(FIXTURES.glob("**/*.jpg"))
    assert len(files) >= 10
    for path in files:
        expected = int(str(imagehash.phash(Image.open(path))), 16)
        assert phash.phash_bytes(path.read_bytes()) == expected, path.name
    for seed in range(20):
        data = _png(_picture(seed), "JPEG", quality=80)
        assert phash.phash_bytes(data) == int(
            str(imagehash.phash(Image.open(io.BytesIO(data)))), 16
        )
    values, ok = phash.phashes([b"not an image", None, _png(_picture(1))])
    assert ok.tolist() == [False, False, True]
    assert values[2] == phash.phash_bytes(_png(_picture(1)))


def test_image_clusters_catch_reencoded_resized_and_brightened_copies(tmp_path):
    originals = [_picture(seed) for seed in range(8)]
    folder = tmp_path / "real"
    folder.mkdir()
    for i, pic in enumerate(originals):
        (folder / f"{i}.png").write_bytes(_png(pic))
    variants = tmp_path / "copies"
    variants.mkdir()
    image = Image.fromarray(originals[0])
    (variants / "reencoded.jpg").write_bytes(_png(originals[0], "JPEG", quality=70))
    (variants / "resized.png").write_bytes(_png(np.asarray(image.resize((120, 90)))))
    brighter = ImageEnhance.Brightness(Image.fromarray(originals[1])).enhance(1.15)
    (variants / "brighter.png").write_bytes(_png(np.asarray(brighter)))
    cropped = Image.fromarray(originals[2]).crop((3, 2, 157, 118))
    (variants / "cropped.png").write_bytes(_png(np.asarray(cropped)))
    store = curator.init_store(tmp_path / "store")
    store.ingest([folder], source="photos", origin="real")
    store.ingest([variants], source="edits", origin="synthetic", generation=1)
    result = store.dedup(text=False)
    (images,) = result.methods
    assert images.contents == 12
    rows = store.sql(
        "SELECT sample_id, cluster_id, kept FROM duplicates ORDER BY cluster_id, sample_id"
    ).to_pylist()
    clusters: dict[str, set[str]] = {}
    for row in rows:
        clusters.setdefault(row["cluster_id"], set()).add(row["sample_id"])
    assert sorted(map(sorted, clusters.values())) == [
        ["edits/brighter.png", "photos/1.png"],
        ["edits/cropped.png", "photos/2.png"],
        ["edits/reencoded.jpg", "edits/resized.png", "photos/0.png"],
    ]
    assert {r["sample_id"] for r in rows if r["kept"]} == {
        "photos/0.png",
        "photos/1.png",
        "photos/2.png",
    }


def test_dedup_cli(runner, tmp_path):
    store, _truth = _text_store(tmp_path)
    env = {"CURATOR_STORE": store.root}
    result = invoke(runner, "dedup", "--no-images", env=env)
    assert result.exit_code == 0, result.output
    assert "LSH 12 bands × 10 rows" in result.output
    n = _distinct_texts(tmp_path)
    assert f"{n} distinct contents ({n} newly hashed)" in result.output
    data = json.loads(invoke(runner, "dedup", "--json", env=env).output)
    assert [m["method"] for m in data["methods"]] == ["minhash", "phash"]
    bad = invoke(runner, "dedup", "--shingle", "words:5", env=env)
    assert bad.exit_code == 1 and "'words:5' is not a shingling" in bad.output
