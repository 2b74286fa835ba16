"""Provenance inference: file signals on real fixtures, near-duplicate propagation, the time
prior, a detector, relabelling with label events, conflicts, and contamination."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

import curator
from curator.infer.signals import read_signals, strongest
from tests.conftest import SUBPROCESS_TIMEOUT, invoke, png_bytes

FIXTURES = Path(__file__).resolve().parent / "data" / "fixtures"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@pytest.mark.parametrize(
    ("name", "evidence", "origin", "reason"),
    [
        ("c2pa/A.jpg", None, None, None),
        ("c2pa/C.jpg", "c2pa", "synthetic", "C2PA manifest (Valid, untrusted signer): algorithmicMedia"),
        ("c2pa/C_with_CAWG_data.jpg", "c2pa", "real", "C2PA manifest (Valid, untrusted signer): digitalCapture"),
        ("c2pa/CA.jpg", "c2pa", "unknown", "C2PA manifest (Valid) names no digital source type; 1 ingredient(s)"),
        ("c2pa/XCA.jpg", "c2pa", "unknown", "C2PA manifest fails validation (assertion.dataHash.mismatch): evidence of nothing"),
        ("c2pa/cloud.jpg", "c2pa", "unknown", "C2PA manifest could not be read: Remote: must fetch remote manifests"),
        ("generator-metadata/automatic1111_cropped.png", "generator-metadata", "synthetic", "generator metadata: Stable Diffusion WebUI `parameters`"),
        ("generator-metadata/automatic1111_cropped.jpg", "generator-metadata", "synthetic", "generator metadata: EXIF UserComment with Stable Diffusion WebUI parameters"),
        ("generator-metadata/fooocus1_cropped.png", "generator-metadata", "synthetic", "generator metadata: Fooocus `parameters`"),
        ("generator-metadata/invokeai_imeta1.png", "generator-metadata", "synthetic", "generator metadata: InvokeAI `invokeai_metadata`"),
        ("generator-metadata/novelai1_cropped.png", "generator-metadata", "synthetic", "generator metadata: `Software` 'NovelAI'"),
        ("generator-metadata/unclip_2pass_cropped.png", "generator-metadata", "synthetic", "generator metadata: ComfyUI `prompt`, ComfyUI `workflow`"),
    ],
)  # fmt: skip
def test_signals_of_the_fixtures(name, evidence, origin, reason):
    signals, error = read_signals((FIXTURES / name).read_bytes())
    assert error is None
    if evidence is None:
        assert signals == []
        return
    assert (signals[0].evidence, signals[0].origin) == (evidence, origin)
    assert signals[0].reason.startswith(reason)
    if origin == "unknown":
        assert strongest(signals) is None  # a manifest that proves nothing is no label


def _xmp(form: str, value: str) -> bytes:
    ns = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
    if form == "attribute":
        body = f'<rdf:Description rdf:about="" Iptc4xmpExt:DigitalSourceType="{value}"/>'
    elif form == "text":
        body = f'<rdf:Description rdf:about=""><Iptc4xmpExt:DigitalSourceType>{value}</Iptc4xmpExt:DigitalSourceType></rdf:Description>'
    else:
        body = f'<rdf:Description rdf:about=""><Iptc4xmpExt:DigitalSourceType rdf:resource="{value}"/></rdf:Description>'
    return (
        f'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF {ns}>'
        f'{body}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def image_with_xmp(fmt: str, packet: bytes, color: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    image = Image.new("RGB", (24, 16), color)
    buffer = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet.decode())
        image.save(buffer, format="PNG", pnginfo=info)
    else:
        image.save(buffer, format=fmt, xmp=packet)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("form", ["attribute", "text", "resource"])
def test_iptc_digital_source_type_in_every_form_and_format(fmt, form):
    synthetic = image_with_xmp(fmt, _xmp(form, IPTC + "trainedAlgorithmicMedia"))
    (signal,) = read_signals(synthetic)[0]
    assert (signal.evidence, signal.origin, signal.confidence) == ("iptc", "synthetic", 0.9)
    real = image_with_xmp(fmt, _xmp(form, IPTC + "digitalCapture"))
    assert read_signals(real)[0][0].origin == "real"


def test_bad_files_are_reported_not_raised():
    broken = image_with_xmp("PNG", b"<x:xmpmeta><rdf:RDF><unclosed")
    signals, error = read_signals(broken)
    assert error is None and [s.reason[:13] for s in signals] == ["malformed XMP"]
    # a 2 MB ComfyUI workflow chunk
    image = Image.new("RGB", (8, 8))
    info = PngImagePlugin.PngInfo()
    info.add_text("workflow", json.dumps({"nodes": ["x" * 1000] * 2100}))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    assert len(buffer.getvalue()) > 2_000_000
    (signal,) = read_signals(buffer.getvalue())[0]
    assert signal.reason == "generator metadata: ComfyUI `workflow`"
    truncated = (FIXTURES / "generator-metadata" / "automatic1111_cropped.jpg").read_bytes()[:400]
    assert read_signals(truncated) == ([], "not a readable image: Truncated File Read")
    assert read_signals(b"definitely not an image") == (
        [],
        read_signals(b"definitely not an image")[1],
    )
    assert read_signals(b"definitely not an image")[1].startswith("not a readable image")


def _image_store(tmp_path: Path) -> curator.Store:
    store = curator.init_store(tmp_path / "store")
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    for name in (
        "c2pa/C.jpg",
        "c2pa/XCA.jpg",
        "c2pa/A.jpg",
        "generator-metadata/invokeai_imeta1.png",
    ):
        shutil.copy(FIXTURES / name, unknown / Path(name).name)
    (unknown / "iptc.png").write_bytes(
        image_with_xmp("PNG", _xmp("text", IPTC + "trainedAlgorithmicMedia"), (1, 2, 3))
    )
    store.ingest([unknown], source="crawl", origin="unknown", collected_at=date(2024, 5, 1))
    declared = tmp_path / "declared"
    declared.mkdir()
    (declared / "camera.png").write_bytes(
        image_with_xmp("PNG", _xmp("resource", IPTC + "trainedAlgorithmicMedia"), (200, 2, 3))
    )
    store.ingest([declared], source="photos", origin="real")
    old = tmp_path / "old"
    old.mkdir()
    (old / "old.png").write_bytes(png_bytes((5, 5, 250)))
    store.ingest([old], source="archive", origin="unknown", collected_at=date(2019, 1, 1))
    return store


def test_infer_relabels_from_signals_and_reports_conflicts(tmp_path):
    store = _image_store(tmp_path)
    before = {s["path"] for s in store.live_shards()}
    report = store.infer(apply=False)
    assert report.relabelled == 4 and report.applied is False
    assert {s["path"] for s in store.live_shards()} == before  # --report changes nothing
    result = store.infer()
    assert result.by_evidence == {"c2pa": 1, "generator-metadata": 1, "iptc": 1, "time-prior": 1}
    labels = {
        r["sample_id"]: (r["origin"], r["generation"], r["origin_evidence"], r["origin_confidence"])
        for r in store.sql(
            "SELECT sample_id, origin, generation, origin_evidence, origin_confidence FROM samples"
        ).to_pylist()
    }
    assert labels["crawl/C.jpg"][:3] == ("synthetic", 1, "c2pa")
    assert labels["crawl/invokeai_imeta1.png"][:3] == ("synthetic", 1, "generator-metadata")
    assert labels["crawl/iptc.png"][:3] == ("synthetic", 1, "iptc")
    assert labels["crawl/XCA.jpg"][0] == "unknown"  # tampered: evidence of nothing
    assert labels["crawl/A.jpg"][0] == "unknown"  # no signal is not evidence of being real
    assert labels["archive/old.png"] == ("real", 0, "time-prior", pytest.approx(0.6))
    assert labels["photos/camera.png"][:3] == ("real", 0, "declared")  # never silently changed
    assert [(c["sample_id"], c["signal_origin"]) for c in result.conflicts] == [
        ("photos/camera.png", "synthetic")
    ]
    events = store.sql(
        "SELECT sample_id, old_origin, new_origin, new_evidence FROM label_events ORDER BY sample_id"
    ).to_pylist()
    assert events == [
        {"sample_id": "archive/old.png", "old_origin": "unknown", "new_origin": "real", "new_evidence": "time-prior"},
        {"sample_id": "crawl/C.jpg", "old_origin": "unknown", "new_origin": "synthetic", "new_evidence": "c2pa"},
        {"sample_id": "crawl/invokeai_imeta1.png", "old_origin": "unknown", "new_origin": "synthetic", "new_evidence": "generator-metadata"},
        {"sample_id": "crawl/iptc.png", "old_origin": "unknown", "new_origin": "synthetic", "new_evidence": "iptc"},
    ]  # fmt: skip
    assert store.sql("SELECT count(*) AS n FROM label_conflicts").to_pylist() == [{"n": 1}]
    # the old shards are kept, no longer live; the new ones hold every row
    after = {s["path"] for s in store.live_shards()}
    assert before - after and all((Path(store.root) / p).exists() for p in before)
    assert store.stats().total_rows == 7
    assert store.infer().relabelled == 0  # nothing more to do


def test_near_duplicates_carry_labels_and_contamination(tmp_path):
    import random

    rng = random.Random(2)
    docs = [" ".join(f"w{rng.randrange(3000)}" for _ in range(80)) for _ in range(20)]
    edited = [d.replace(d.split()[40], "changed", 1) for d in docs]
    (tmp_path / "real.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[:10]))
    (tmp_path / "gen.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[10:]))
    (tmp_path / "crawl.jsonl").write_text(
        "".join(json.dumps({"text": d}) + "\n" for d in edited[5:15])
    )
    store = curator.init_store(tmp_path / "store")
    store.ingest([tmp_path / "real.jsonl"], source="web", origin="real")
    store.ingest(
        [tmp_path / "gen.jsonl"], source="gen", origin="synthetic", generation=2, model="m"
    )
    store.ingest([tmp_path / "crawl.jsonl"], source="crawl", origin="unknown")
    dirty = store.contamination("crawl")
    assert (dirty["contaminated"], dirty["dedup_has_run"]) == (0, False)
    store.dedup(images=False)
    dirty = store.contamination("crawl")
    assert (dirty["samples"], dirty["contaminated"], dirty["fraction"]) == (10, 5, 0.5)
    assert dirty["by_generation_and_model"] == [
        {"generation": 2, "model": "m", "samples": 5, "fraction": 0.5}
    ]
    runner = CliRunner()
    env = {"CURATOR_STORE": store.root}
    table = invoke(runner, "contamination", "--source", "crawl", env=env)
    assert table.exit_code == 0, table.output
    assert table.output.splitlines() == [
        "source crawl: 5 of 10 samples (50.00%) near-duplicate known synthetic samples",
        "generation  model  samples  share",
        "----------  -----  -------  ------",
        "         2  m            5  50.00%",
    ]
    as_json = json.loads(
        invoke(runner, "contamination", "--source", "crawl", "--json", env=env).output
    )
    assert as_json == {**dirty, "dedup_has_run": True}
    result = store.infer()
    assert result.by_evidence == {"near-duplicate": 10}
    rows = store.sql(
        "SELECT origin, generation, model, origin_evidence, count(*) AS n, min(origin_confidence) AS c "
        "FROM samples WHERE source = 'crawl' GROUP BY ALL ORDER BY origin"
    ).to_pylist()
    assert [(r["origin"], r["generation"], r["model"], r["n"]) for r in rows] == [
        ("real", 0, None, 5),
        ("synthetic", 2, "m", 5),
    ]
    assert all(0.8 <= r["c"] < 1.0 for r in rows)


def test_a_detector_labels_what_is_still_unknown(tmp_path, monkeypatch):
    (tmp_path / "mydetector.py").write_text(
        "def score(table):\n"
        "    return [0.99 if 'robot' in t else 0.01 if 'human' in t else 0.5 for t in table['text'].to_pylist()]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "u.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in ["robot text", "human text", "who knows"])
    )
    store = curator.init_store(tmp_path / "store")
    store.ingest([tmp_path / "u.jsonl"], source="u", origin="unknown")
    result = store.infer(detector="mydetector:score", detector_threshold=0.9)
    assert result.by_evidence == {"detector": 2}
    assert store.sql(
        "SELECT sample_id, origin, origin_confidence FROM samples ORDER BY sample_id"
    ).to_pylist() == [
        {
            "sample_id": "u/u.jsonl:1",
            "origin": "synthetic",
            "origin_confidence": pytest.approx(0.99),
        },
        {"sample_id": "u/u.jsonl:2", "origin": "real", "origin_confidence": pytest.approx(0.99)},
        {"sample_id": "u/u.jsonl:3", "origin": "unknown", "origin_confidence": pytest.approx(1.0)},
    ]
    with pytest.raises(curator.CuratorError, match="is not module:function"):
        store.infer(detector="nocolon")
    sys.modules.pop("mydetector", None)


def test_the_time_prior_follows_its_cutoff_and_never_overrides_a_stronger_signal(runner, tmp_path):
    store = _image_store(tmp_path)
    early = tmp_path / "early"
    early.mkdir()
    shutil.copy(FIXTURES / "c2pa" / "C.jpg", early / "C-2019.jpg")
    store.ingest([early], source="early", origin="unknown", collected_at=date(2019, 6, 1))
    env = {"CURATOR_STORE": store.root}

    def changes(*args: str) -> dict[str, tuple[str, str, float]]:
        result = invoke(runner, "infer", "--report", "--json", *args, env=env)
        assert result.exit_code == 0, result.output
        return {
            c["sample_id"]: (
                c["new"]["origin"],
                c["new"]["evidence"],
                round(c["new"]["confidence"], 3),
            )
            for c in json.loads(result.output)["changes"]
        }

    default = changes()
    assert default["archive/old.png"] == ("real", "time-prior", 0.6)
    # collected in 2019, before the cutoff, but its C2PA manifest says generated: C2PA wins
    assert default["early/C-2019.jpg"][:2] == ("synthetic", "c2pa")
    later = changes("--cutoff", "2018-01-01", "--time-prior-confidence", "0.75")
    assert "archive/old.png" not in later  # 2019 is after this cutoff
    assert later["early/C-2019.jpg"][:2] == ("synthetic", "c2pa")
    surer = changes("--time-prior-confidence", "0.75")
    assert surer["archive/old.png"] == ("real", "time-prior", 0.75)


def test_a_detector_module_in_the_current_directory_needs_no_pythonpath(
    runner, tmp_path, monkeypatch
):
    (tmp_path / "cwd_detector.py").write_text(
        "def score(table):\n    return [0.99 for _ in range(table.num_rows)]\n"
    )
    (tmp_path / "u.jsonl").write_text(json.dumps({"text": "anything"}) + "\n")
    store = curator.init_store(tmp_path / "store")
    store.ingest([tmp_path / "u.jsonl"], source="u", origin="unknown")
    monkeypatch.chdir(tmp_path)
    assert str(tmp_path) not in sys.path
    result = invoke(
        runner,
        "infer",
        "--json",
        "--detector",
        "cwd_detector:score",
        env={"CURATOR_STORE": store.root},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["by_evidence"] == {"detector": 1}
    assert str(tmp_path) not in sys.path  # the import did not leave the directory behind
    missing = invoke(
        runner, "infer", "--detector", "no_such_module:score", env={"CURATOR_STORE": store.root}
    )
    assert missing.exit_code == 1
    assert "cannot import detector module `no_such_module`" in missing.output
    assert "run from the directory that holds it" in missing.output
    sys.modules.pop("cwd_detector", None)


def test_infer_cli(runner, tmp_path):
    store = _image_store(tmp_path)
    env = {"CURATOR_STORE": store.root}
    report = invoke(runner, "infer", "--report", env=env)
    assert report.exit_code == 0, report.output
    assert (
        "would relabel 4 (c2pa: 1, generator-metadata: 1, iptc: 1, time-prior: 1)" in report.output
    )
    assert (
        "conflicts (declared labels are kept" in report.output
        and "photos/camera.png" in report.output
    )
    applied = json.loads(invoke(runner, "infer", "--json", env=env).output)
    assert applied["relabelled"] == 4 and applied["shards_rewritten"] == 2
    contamination = invoke(runner, "contamination", "--source", "crawl", env=env)
    assert "No near-duplicate clusters yet" in contamination.output
    missing = invoke(runner, "contamination", "--source", "nope", env=env)
    assert missing.exit_code == 1 and "source `nope` has no sample" in missing.output


def test_review_cases(tmp_path, monkeypatch):
    # a fresh store: nothing to do, no crash
    empty = curator.init_store(tmp_path / "empty")
    assert [m.contents for m in empty.dedup().methods] == [0, 0]
    assert empty.infer().relabelled == 0
    # flat or tiny images carry no pHash structure and cluster with nothing
    store = curator.init_store(tmp_path / "store")
    folder = tmp_path / "flat"
    folder.mkdir()
    for i, size in enumerate([(1, 1), (40, 30), (64, 64)]):
        Image.new("RGB", size, (i * 60, 100, 100)).save(folder / f"{i}.png")
    Image.new("L", (50, 50), 128).save(folder / "grey.png")
    store.ingest([folder], source="flat", origin="unknown")
    (images,) = store.dedup(text=False).methods
    assert (images.contents, images.clusters) == (0, 0)  # imagehash gives them all 0x8000…
    assert store.sql("SELECT count(*) AS n FROM duplicates").to_pylist() == [{"n": 0}]
    # a detector that fails is the detector's error, named
    (tmp_path / "boom.py").write_text(
        "def score(table):\n    raise RuntimeError('model crashed')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        curator.CuratorError, match=r"the detector `score` failed: RuntimeError: model crashed"
    ):
        store.infer(detector="boom:score")
    with pytest.raises(curator.CuratorError, match=r"not in \(0.5, 1\]"):
        store.infer(detector="boom:score", detector_threshold=0.5)
    sys.modules.pop("boom", None)


def test_near_dedup_assembly_follows_labels_changed_after_dedup(tmp_path, monkeypatch):
    import random

    (tmp_path / "bdetector.py").write_text(
        "def score(table):\n"
        "    return [0.01 if 'edit' in t else 0.5 for t in table['text'].to_pylist()]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = random.Random(5)
    docs = [" ".join(f"w{rng.randrange(3000)}" for _ in range(60)) for _ in range(10)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (tmp_path / "b.jsonl").write_text(
        "".join(json.dumps({"text": d.replace(d.split()[30], "edit", 1)}) + "\n" for d in docs)
    )
    store = curator.init_store(tmp_path / "store")
    store.ingest(
        [tmp_path / "a.jsonl"], source="a", origin="unknown", collected_at=date(2023, 1, 2)
    )
    store.ingest(
        [tmp_path / "b.jsonl"], source="b", origin="unknown", collected_at=date(2024, 1, 2)
    )
    store.dedup(images=False)
    assert store.sql(
        "SELECT DISTINCT sample_id[:1] AS s FROM duplicates WHERE kept"
    ).to_pylist() == [{"s": "a"}]  # both unknown: the earlier is kept
    # then a detector says the b copies are real: b is now the one to keep
    assert store.infer(detector="bdetector:score").by_evidence == {"detector": 10}
    sys.modules.pop("bdetector", None)
    policy = {
        "seed": 1,
        "target": {"rows": 20},
        "constraints": {"max_unknown_fraction": 0.0},
        "dedup": {"near": True},
        "output": {"shard_rows": 20, "on_shortfall": "shrink"},
    }
    manifest = store.assemble(curator.Policy.from_dict(policy), tmp_path / "out")
    assert manifest.rows == 10
    assert manifest.data["composition"]["overall"]["by_source"] == {"b": {"rows": 10, "units": 10}}


# -- paths read from the catalog stay inside the store ----------------------------------------


def _old_text_store(tmp_path: Path, write_jsonl) -> curator.Store:
    """A store with one unknown sample that the time prior relabels (so infer writes a shard)."""
    store = curator.init_store(tmp_path / "store")
    store.ingest(
        [write_jsonl("old.jsonl", [{"text": "written long ago", "id": "a"}])],
        source="old", origin="unknown", collected_at=date(2019, 1, 1),
    )  # fmt: skip
    return store


@pytest.mark.parametrize("form", ["dotdot", "absolute"])
def test_a_tampered_shard_path_is_refused_not_written(tmp_path, write_jsonl, form):
    import duckdb

    from curator.core.errors import StoreError

    store = _old_text_store(tmp_path, write_jsonl)
    (shard,) = store.live_shards()
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(Path(store.root) / shard["path"], outside / "x.parquet")
    path = "../outside/x.parquet" if form == "dotdot" else str(outside / "x.parquet")
    with duckdb.connect(store.catalog_path) as con:
        con.execute("UPDATE shards SET path = ?", [path])
    for run in (store.infer, store.dedup):
        with pytest.raises(StoreError) as caught:
            run()
        assert caught.value.message == (
            f"the catalog of store `{store.root}` names the shard path `{path}`, which is not "
            "inside the store: the catalog looks tampered with"
        )
    assert sorted(p.name for p in outside.iterdir()) == ["x.parquet"]  # nothing written there
    with duckdb.connect(store.catalog_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM label_events").fetchall() == [(0,)]
    with pytest.raises(StoreError, match="the catalog looks tampered with"):
        store.sql("SELECT count(*) FROM shards")  # the query surface refuses it too


# -- a killed infer: the next writer removes exactly what it wrote ------------------------------


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-m", "curator", *args],
        env={**os.environ, "PYTHONPATH": str(root), **(env or {})},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def _shard_files(store: curator.Store) -> list[str]:
    shards = Path(store.root) / "shards"
    return sorted(str(p.relative_to(store.root)) for p in shards.rglob("*") if p.is_file())


@pytest.mark.parametrize("next_command", ["infer", "dedup"])
def test_a_killed_infer_leaves_shards_that_the_next_writer_removes(
    tmp_path, write_jsonl, next_command
):
    store = _old_text_store(tmp_path, write_jsonl)
    (original,) = [s["path"] for s in store.live_shards()]
    # a file in the store that no curator run can be shown to have written is left alone
    stranger = Path(store.root) / "shards" / "old" / "kept-by-hand.parquet"
    stranger.write_bytes(b"not curator's")
    killed = _run_cli("infer", "--store", store.root, env={"CURATOR_CRASH_AT": "infer-written"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (orphan,) = set(_shard_files(store)) - {original, "shards/old/kept-by-hand.parquet"}
    assert orphan.startswith(original[: -len(".parquet")] + "~")
    assert [s["path"] for s in store.live_shards()] == [original]  # nothing committed
    (work,) = (Path(store.root) / ".staging").iterdir()
    assert json.loads((work / "placing.json").read_text())["paths"] == [orphan]
    if next_command == "infer":
        result = store.infer()
        assert result.relabelled == 1
        (live,) = [s["path"] for s in store.live_shards()]
        assert _shard_files(store) == sorted([original, live, "shards/old/kept-by-hand.parquet"])
    else:
        store.dedup()
        assert _shard_files(store) == [original, "shards/old/kept-by-hand.parquet"]
    assert orphan not in _shard_files(store)
    assert list((Path(store.root) / ".staging").iterdir()) == []


def test_a_kill_after_the_infer_commit_keeps_its_shards(tmp_path, write_jsonl):
    store = _old_text_store(tmp_path, write_jsonl)
    killed = _run_cli("infer", "--store", store.root, env={"CURATOR_CRASH_AT": "infer-committed"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (live,) = [s["path"] for s in store.live_shards()]
    assert "~" in live and live in _shard_files(store)
    assert store.infer().relabelled == 0  # the run was complete; its shard stays
    assert [s["path"] for s in store.live_shards()] == [live] and live in _shard_files(store)
    assert list((Path(store.root) / ".staging").iterdir()) == []


# -- C2PA: ingredients give depth; only trusted signers make a claim of real strong ---------------


def _c2pa_sign(source: bytes, source_type: str, parent: bytes | None = None) -> bytes:
    """A JPEG signed with the c2pa-python test certificate (a signer no trust list knows)."""
    c2pa = pytest.importorskip("c2pa")
    keys = FIXTURES / "c2pa"
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(
            b"es256",
            (keys / "es256_certs.pem").read_bytes(),
            (keys / "es256_private.key").read_bytes(),
            None,
        )
    )
    action: dict = {"action": "c2pa.created", "digitalSourceType": IPTC + source_type}
    if parent is not None:
        action.update(action="c2pa.opened", parameters={"ingredientIds": ["parent"]})
    builder = c2pa.Builder(
        {
            "claim_generator_info": [{"name": "curator-tests", "version": "1"}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
        }
    )
    if parent is not None:
        builder.add_ingredient(
            {"title": "parent.jpg", "relationship": "parentOf", "label": "parent"},
            "image/jpeg",
            io.BytesIO(parent),
        )
    out = io.BytesIO()
    builder.sign(signer, "image/jpeg", io.BytesIO(source), out)
    return out.getvalue()


def _trust_anchor(tmp_path: Path) -> Path:
    """The CA of the test signer (the second certificate of its chain) as a trust-anchor file."""
    chain = (FIXTURES / "c2pa" / "es256_certs.pem").read_text()
    ca = "-----BEGIN CERTIFICATE-----" + chain.split("-----BEGIN CERTIFICATE-----")[2]
    path = tmp_path / "anchors.pem"
    path.write_text(ca)
    return path


def test_c2pa_parent_ingredients_give_generation_depth(tmp_path):
    plain = (FIXTURES / "c2pa" / "A.jpg").read_bytes()
    first = _c2pa_sign(plain, "trainedAlgorithmicMedia")
    second = _c2pa_sign(plain, "trainedAlgorithmicMedia", parent=first)
    third = _c2pa_sign(plain, "trainedAlgorithmicMedia", parent=second)
    from_photo = _c2pa_sign(
        plain, "trainedAlgorithmicMedia", parent=_c2pa_sign(plain, "digitalCapture")
    )
    depths = {}
    for name, data in (("1", first), ("2", second), ("3", third), ("photo", from_photo)):
        (signal,) = read_signals(data)[0]
        assert (signal.evidence, signal.origin, signal.confidence) == ("c2pa", "synthetic", 0.99)
        depths[name] = (signal.generation, signal.reason)
    base = "C2PA manifest (Valid, untrusted signer): trainedAlgorithmicMedia"
    assert depths == {
        "1": (1, base),
        "2": (2, base + "; generation 2 from C2PA-generated parent ingredients"),
        "3": (3, base + "; generation 3 from C2PA-generated parent ingredients"),
        "photo": (1, base),  # a generated edit of a capture is one generation deep
    }
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "second.jpg").write_bytes(second)
    store = curator.init_store(tmp_path / "store")
    store.ingest([folder], source="crawl", origin="unknown")
    assert store.infer().relabelled == 1
    assert store.sql("SELECT origin, generation, origin_evidence FROM samples").to_pylist() == [
        {"origin": "synthetic", "generation": 2, "origin_evidence": "c2pa"}
    ]
    assert store.infer().relabelled == 0


def test_a_claim_of_real_counts_fully_only_from_a_trusted_signer(tmp_path, runner, monkeypatch):
    monkeypatch.delenv("CURATOR_C2PA_TRUST_ANCHORS", raising=False)
    plain = (FIXTURES / "c2pa" / "A.jpg").read_bytes()
    (signal,) = read_signals(_c2pa_sign(plain, "digitalCapture"))[0]
    assert (signal.origin, signal.confidence) == ("real", 0.9)  # as much as unsigned IPTC
    assert signal.reason == (
        "C2PA manifest (Valid, untrusted signer): digitalCapture; a claim of real from an "
        "untrusted signer counts as unsigned metadata (load trust anchors with --c2pa-trust-anchors)"
    )
    assert signal.detail["trust"] == "untrusted"
    anchors = _trust_anchor(tmp_path)
    (trusted,) = read_signals(
        _c2pa_sign(plain, "digitalCapture"), c2pa_trust_anchors=anchors.read_text()
    )[0]
    assert (trusted.origin, trusted.confidence, trusted.detail["trust"]) == (
        "real",
        0.99,
        "trusted",
    )
    assert trusted.reason == "C2PA manifest (Trusted, trusted signer): digitalCapture"
    # a claim of generated from an untrusted signer stays strong
    (generated,) = read_signals((FIXTURES / "c2pa" / "C.jpg").read_bytes())[0]
    assert (generated.origin, generated.confidence) == ("synthetic", 0.99)

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(_c2pa_sign(plain, "digitalCapture"))
    store = curator.init_store(tmp_path / "store")
    store.ingest([folder], source="crawl", origin="unknown")
    first = store.infer()
    assert [c["new"]["confidence"] for c in first.changes] == [0.9]
    # the same file read again with trust anchors (the env var): the claim now counts fully
    env = {"CURATOR_STORE": store.root, "CURATOR_C2PA_TRUST_ANCHORS": str(anchors)}
    report = invoke(runner, "infer", "--report", "--json", env=env)
    assert [c["new"]["confidence"] for c in json.loads(report.output)["changes"]] == [0.99]
    assert store.infer(c2pa_trust_anchors=anchors).relabelled == 1
    events = store.sql(
        "SELECT new_origin, round(new_confidence, 2) AS c, evidence_detail->>'trust' AS trust, "
        "evidence_detail->>'validation_state' AS state FROM label_events ORDER BY created_at"
    ).to_pylist()
    assert events == [
        {"new_origin": "real", "c": 0.9, "trust": "untrusted", "state": "Valid"},
        {"new_origin": "real", "c": 0.99, "trust": "trusted", "state": "Trusted"},
    ]
    from curator.cli import cli

    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    result = runner.invoke(
        cli,
        ["infer", "--c2pa-trust-anchors", str(bad)],
        env={"CURATOR_STORE": store.root},
    )
    assert result.exit_code == 1
    assert f"the C2PA trust anchors `{bad}` hold no PEM certificate" in result.output
