"""Exports of a set's provenance (issue 15): Croissant 1.1 checked with mlcroissant, the dataset
card read back with huggingface_hub, the OpenLineage event parsed back (and posted to a local
HTTP server), the AI Act training-summary draft; and their errors. Everything offline."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import curator
import curator.api
from tests.conftest import SUBPROCESS_TIMEOUT, invoke

POLICY = """name = "{name}"
seed = 1
[target]
rows = {rows}
[constraints]
min_fresh_real_fraction = 0.2
max_synthetic_fraction = 0.5
max_unknown_fraction = 0.2
[freshness]
lineage = "main"
[output]
shard_rows = 10
"""


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with real rows of two sources (one collected 2019, one 2021), synthetic rows of
    two models and two generations (the second derived from the first), rows of unknown origin,
    and three manifests of lineage `main`; the last one (`m3`) holds every kind of row, some real
    rows of it already used by `m1`/`m2`."""
    root = tmp_path_factory.mktemp("export")
    store = curator.init_store(root / "store")
    store.ingest(
        [_jsonl(root / "web.jsonl", [{"text": f"real document number {i} about topic {i % 7}"} for i in range(40)])],
        source="web-2021", origin="real", collected_at=date(2021, 3, 1),
    )  # fmt: skip
    store.ingest(
        [_jsonl(root / "books.jsonl", [{"text": f"book passage {i} of a novel chapter {i % 5}"} for i in range(20)])],
        source="books", origin="real", collected_at=date(2019, 6, 1),
    )  # fmt: skip

    def assemble(name: str, rows: int) -> curator.Manifest:
        policy = root / f"{name}.toml"
        policy.write_text(POLICY.format(name=name, rows=rows))
        return store.assemble(policy, root / name, lineage="main", name=name)

    assemble("m1", 10)
    store.register_model("gen-a", trained_on="m1")
    store.ingest(
        [_jsonl(root / "a.jsonl", [{"text": f"synthetic text from model a number {i}"} for i in range(10)])],
        source="gen-a-out", generated_by="gen-a",
    )  # fmt: skip
    assemble("m2", 20)
    store.register_model("gen-b", trained_on="m2")
    store.ingest(
        [_jsonl(root / "b.jsonl", [{"text": f"second generation text {i}", "of": f"gen-a-out/a.jsonl:{i + 1}"} for i in range(10)])],
        source="gen-b-out", generated_by="gen-b", parent_id_column="of",
    )  # fmt: skip
    store.ingest(
        [_jsonl(root / "crawl.jsonl", [{"text": f"crawled page {i} of unknown origin"} for i in range(10)])],
        source="crawl", origin="unknown",
    )  # fmt: skip
    manifest = assemble("m3", 40)
    return {"root": root, "store": store, "manifest": manifest, "set": root / "m3"}


def _output_rows(manifest: curator.Manifest) -> list[dict[str, Any]]:
    columns = ["sample_id", "origin", "generation", "model", "parent_id", "origin_evidence"]
    rows: list[dict[str, Any]] = []
    for path in manifest.output_paths():
        rows += pq.read_table(path, columns=columns).to_pylist()
    return rows


def test_the_set_holds_every_kind_of_row(world):
    overall = world["manifest"].data["composition"]["overall"]
    assert {k: v["rows"] for k, v in overall["by_freshness"].items()} == {
        "fresh_real": 18,
        "used_real": 10,
        "not_real": 12,
    }
    assert {k: v["rows"] for k, v in overall["by_generation"].items()} == {
        "0": 28,
        "1": 4,
        "2": 4,
        "unknown": 4,
    }


# -- Croissant ---------------------------------------------------------------------------------


def test_croissant_validates_and_mlcroissant_loads_every_record_with_its_provenance(world, runner):
    import mlcroissant as mlc

    path = world["set"] / "croissant.json"
    result = invoke(
        runner, "export", "croissant", str(world["set"]), "-o", str(path), "--license", "cc-by-4.0"
    )
    assert result.exit_code == 0, result.output
    manifest = world["manifest"]
    assert result.output.splitlines()[0] == (
        f"Wrote {path}: Croissant 1.1 + RAI 1.0, 40 records in 4 file(s) of manifest "
        f"{manifest.manifest_id}"
    )
    dataset = mlc.Dataset(jsonld=str(path))  # raises ValidationError on any error
    assert dataset.metadata.ctx.issues.errors == set()
    assert dataset.metadata.ctx.issues.warnings == set()
    records = list(dataset.records("samples"))
    assert len(records) == 40

    def text(value: Any) -> Any:
        return value.decode() if isinstance(value, bytes) else value

    loaded = sorted(
        (
            text(r["samples/sample_id"]),
            text(r["samples/origin"]),
            None if r["samples/generation"] != r["samples/generation"] else r["samples/generation"],
            text(r["samples/model"]),
            text(r["samples/parent_id"]),
            text(r["samples/origin_evidence"]),
        )
        for r in records
    )
    assert loaded == sorted(tuple(row.values()) for row in _output_rows(manifest))
    second = [row for row in loaded if row[3] == "gen-b"]
    assert len(second) == 4
    for sample_id, origin, generation, _model, parent, evidence in second:
        number = int(sample_id.rsplit(":", 1)[1])
        assert (origin, generation, evidence) == ("synthetic", 2, "model-lineage")
        assert parent == f"gen-a-out/a.jsonl:{number}"
    assert {row[3] for row in loaded if row[2] == 1} == {"gen-a"}
    assert {row[1] for row in loaded if row[2] is None} == {"unknown"}


def test_croissant_declares_the_specs_files_prov_and_rai_terms(world):
    manifest = world["manifest"]
    doc = curator.api.to_croissant(world["set"], store=world["store"])
    assert doc["conformsTo"] == [
        "http://mlcommons.org/croissant/1.1",
        "http://mlcommons.org/croissant/RAI/1.0",
    ]
    assert doc["@context"]["prov"] == "http://www.w3.org/ns/prov#"
    files = [d for d in doc["distribution"] if d["@type"] == "cr:FileObject"]
    assert [(f["contentUrl"], f["sha256"]) for f in files] == [
        (o["path"], o["sha256"]) for o in manifest.outputs
    ]
    (file_set,) = [d for d in doc["distribution"] if d["@type"] == "cr:FileSet"]
    assert file_set["includes"] == [o["path"] for o in manifest.outputs]
    (record_set,) = doc["recordSet"]
    assert record_set["key"] == {"@id": "samples/sample_id"}
    annotation = record_set["annotation"]
    assert annotation["@id"] == "samples/provenance"
    assert {f["name"]: f["equivalentProperty"] for f in annotation["subField"]} == {
        "model": "prov:wasGeneratedBy",
        "parent_id": "prov:wasDerivedFrom",
        "source": "prov:hadPrimarySource",
        "collected_at": "prov:generatedAtTime",
        "origin": "curator:origin",
        "generation": "curator:generation",
        "origin_evidence": "curator:originEvidence",
        "origin_confidence": "curator:originConfidence",
    }
    assert doc["rai:dataCollectionTimeframe"] == ["2019-06-01T00:00:00Z", "2021-03-01T00:00:00Z"]
    assert doc["rai:dataCollectionType"] == ["Others", "Software Collection"]
    assert doc["rai:dataUseCases"] == ["Training"]
    assert doc["rai:dataLimitations"][0] == (
        "20.0% of the set (rows) is synthetic, made by: "
        f"gen-a (4 rows, generation 1, trained on manifest {world['store'].manifest('m1').manifest_id}); "
        f"gen-b (4 rows, generation 2, trained on manifest {world['store'].manifest('m2').manifest_id})."
    )
    assert doc["rai:dataPreprocessingProtocol"][0].startswith(
        "Deduplication before sampling: exact duplicates removed"
    )
    assert (
        "max_synthetic_fraction <= 0.5 (achieved 0.2, held)"
        in doc["rai:dataPreprocessingProtocol"][1]
    )
    assert {source["prov:label"] for source in doc["prov:wasDerivedFrom"]} == {
        "books", "crawl", "gen-a-out", "gen-b-out", "web-2021",
    }  # fmt: skip
    assert len(doc["prov:wasGeneratedBy"]["prov:used"]) == len(manifest.data["store"]["shards"])
    # The spec's RAI term names, not mlcroissant's variants of two of them.
    assert not {"rai:dataCollectionTimeFrame", "rai:dataDataManipulationProtocol"} & set(doc)


def test_croissant_written_above_the_set_names_files_below_it(world):
    import mlcroissant as mlc

    path = world["root"] / "m3.croissant.json"
    from curator.export.croissant import write_croissant

    write_croissant(world["manifest"], path)
    doc = json.loads(path.read_text())
    assert doc["distribution"][0]["contentUrl"] == "m3/data/train-00000-of-00004.parquet"
    assert len(list(mlc.Dataset(jsonld=str(path)).records("samples"))) == 40


def test_mlcroissant_validate_command_accepts_the_file(world):
    from curator.export.croissant import write_croissant

    path = world["set"] / "validate.json"
    write_croissant(world["manifest"], path, license="cc-by-4.0")
    command = Path(sys.executable).with_name("mlcroissant")
    done = subprocess.run(
        [str(command), "validate", "--jsonld", str(path)],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert "Done." in done.stderr


def test_croissant_outside_the_set_is_refused(world, runner, tmp_path):
    out = tmp_path / "elsewhere.json"
    result = invoke(runner, "export", "croissant", str(world["set"]), "-o", str(out))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: the Croissant file `{out}` is outside the set's directory `{world['set']}`: its "
        "file set names the set's files by a path below the Croissant file\n"
        f"Hint: write it in the set's directory or above it, e.g. -o {world['set'] / 'croissant.json'}\n"
    )
    assert not out.exists()


# -- dataset card ------------------------------------------------------------------------------


def test_card_has_yaml_with_synthetic_tag_size_and_sources(world, runner):
    from huggingface_hub import DatasetCard

    path = world["set"] / "README.md"
    result = invoke(runner, "export", "card", "m3", "--store", world["store"].root, "-o", str(path))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Wrote {path}: dataset card of manifest {world['manifest'].manifest_id}\n"
    )
    card = DatasetCard.load(path)
    data = card.data.to_dict()
    assert data["tags"] == ["curator", "provenance", "synthetic"]
    assert data["size_categories"] == ["n<1K"]
    assert data["source_datasets"] == ["books", "crawl", "gen-a-out", "gen-b-out", "web-2021"]
    assert data["pretty_name"] == "m3"
    assert data["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": [o["path"] for o in world["manifest"].outputs]}
            ],
        }
    ]
    body = card.text
    assert "| component | rows | share |" in body
    assert "| fresh real | 18 | 45.0% |" in body
    assert "| synthetic, generation 2 | 4 | 10.0% |" in body
    assert "| max_synthetic_fraction | <= 0.5 | 0.2 | yes |" in body
    m1 = world["store"].manifest("m1").manifest_id
    assert f"| gen-a | 4 | 1 | gen-a-out | {m1} |" in body
    assert '"min_fresh_real_fraction": 0.2' in body
    assert "Not in this card" not in body


def test_card_of_a_set_without_synthetic_rows_has_no_synthetic_tag(world):
    from curator.export.card import to_card

    manifest = world["store"].manifest("m1")
    text = to_card(manifest)
    assert "- synthetic" not in text.split("---")[1]
    assert "Not in this card: registered models' generation and training manifest" in text


# -- OpenLineage -------------------------------------------------------------------------------


def _collector() -> tuple[type[http.server.BaseHTTPRequestHandler], list[tuple[str, str, bytes]]]:
    """A request handler that keeps each POST it receives (path, content type, body)."""
    received: list[tuple[str, str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Collector, received


def test_openlineage_event_written_and_posted(world, runner, tmp_path):
    handler, received = _collector()
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    path = tmp_path / "event.json"
    try:
        result = invoke(
            runner, "export", "openlineage", str(world["set"]), "--store", world["store"].root,
            "-o", str(path), "--url", url,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    manifest = world["manifest"]
    assert result.output == (
        f"Wrote {path}: OpenLineage COMPLETE run event of manifest {manifest.manifest_id}\n"
        f"Posted it to {url}\n"
    )
    ((request_path, content_type, body),) = received
    assert (request_path, content_type) == ("/api/v1/lineage", "application/json")
    event = json.loads(path.read_text())
    assert json.loads(body) == event
    assert event["eventType"] == "COMPLETE"
    assert event["eventTime"] == manifest.data["created_at"]
    assert event["job"] == {"namespace": "curator", "name": "assemble.main", "facets": {}}
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [
        ("file", str(Path(world["store"].root) / shard["path"]))
        for shard in manifest.data["store"]["shards"]
    ]
    (output,) = event["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(world["set"]))
    provenance = output["facets"]["curator_provenance"]
    assert provenance["manifestId"] == manifest.manifest_id
    assert [(c["component"], c["rows"]) for c in provenance["composition"]] == [
        ("fresh_real", 18),
        ("used_real", 10),
        ("synthetic_gen_1", 4),
        ("synthetic_gen_2", 4),
        ("unknown", 4),
    ]
    assert [m["name"] for m in provenance["models"]] == ["gen-a", "gen-b"]
    facets = output["outputFacets"]
    assert sorted(facets) == [
        "outputStatistics",
        "subset_fresh_real",
        "subset_synthetic_gen_1",
        "subset_synthetic_gen_2",
        "subset_unknown",
        "subset_used_real",
    ]
    assert facets["outputStatistics"]["rowCount"] == 40
    gen2 = facets["subset_synthetic_gen_2"]
    assert (gen2["rows"], gen2["share"], gen2["component"]) == (4, 0.1, "synthetic, generation 2")
    assert gen2["outputCondition"]["operator"] == "AND"
    assert gen2["outputCondition"]["right"]["left"] == {"field": "generation", "type": "field"}
    assert gen2["_schemaURL"].endswith(
        "BaseSubsetDatasetFacet.json#/$defs/OutputSubsetOutputDatasetFacet"
    )
    # The client reads it back as a run event.
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.serde import Serde

    typed = curator.api.to_openlineage(world["set"], store=world["store"])
    assert isinstance(typed, RunEvent)
    assert json.loads(Serde.to_json(typed)) == event


def test_openlineage_post_to_nothing_is_an_error_after_the_file_is_written(world, runner, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _collector()[0])
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    path = tmp_path / "event.json"
    result = invoke(
        runner, "export", "openlineage", str(world["set"]), "-o", str(path),
        "--url", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    assert result.exit_code == 1
    assert (
        f"Error: cannot send the OpenLineage event to `http://127.0.0.1:{port}`: " in result.output
    )
    assert "Hint: check that the endpoint is running and reachable; the event file was written" in (
        result.output
    )
    assert json.loads(path.read_text())["eventType"] == "COMPLETE"


# -- training-content summary ------------------------------------------------------------------


def test_training_summary_of_a_lineage_as_json_and_markdown(world, runner, tmp_path):
    store = world["store"]
    out = tmp_path / "summary.json"
    result = invoke(
        runner, "export", "training-summary", "main", "--store", store.root, "-o", str(out),
        "--category", "web-2021=crawled", "--category", "books=public",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Wrote {out}: DRAFT training-content summary (Section 2) of 3 manifest(s); synthetic "
        "data 18.6% (2 model(s))\n"
        "note: unclassified sources (assign them with --category): crawl\n"
    )
    summary = json.loads(out.read_text())
    assert summary["draft"] is True
    assert summary["notice"].startswith("DRAFT for a person to complete and check.")
    assert "Template for the Public Summary of Training Content" in summary["template"]
    assert [m["name"] for m in summary["manifests"]] == ["m1", "m2", "m3"]
    assert summary["total"] == {"rows": 70, "units": 70}
    by_key = {c["key"]: c for c in summary["categories"]}
    assert [(c["section"], c["key"]) for c in summary["categories"]] == [
        ("2.1", "public"),
        ("2.2", "private"),
        ("2.3", "crawled"),
        ("2.4", "user"),
        ("2.5", "synthetic"),
        ("2.6", "other"),
    ]
    synthetic = by_key["synthetic"]
    assert [(s["name"], s["rows"]) for s in synthetic["sources"]] == [
        ("gen-a-out", 9),
        ("gen-b-out", 4),
    ]
    assert [
        (m["name"], m["rows"], m["generations"], m["trained_on"]) for m in synthetic["models"]
    ] == [
        ("gen-a", 9, [1], store.manifest("m1").manifest_id),
        ("gen-b", 4, [2], store.manifest("m2").manifest_id),
    ]
    assert by_key["crawled"]["sources"][0]["collected_from"] == "2021-03-01T00:00:00Z"
    assert [s["name"] for s in summary["unclassified"]["sources"]] == ["crawl"]
    shares = [c["share"] for c in summary["categories"]] + [summary["unclassified"]["share"]]
    assert sum(shares) == pytest.approx(1.0)
    assert sum(c["units"] for c in summary["categories"]) + summary["unclassified"]["units"] == 70

    markdown = tmp_path / "summary.md"
    from curator.export.summary import write_training_summary

    write_training_summary(
        [world["manifest"]], markdown, categories={"web-2021": "crawled", "books": "public"}
    )
    text = markdown.read_text()
    assert text.startswith(
        "# Public summary of training content — Section 2: List of data sources (DRAFT)\n\n"
        "> **DRAFT for a person to complete and check."
    )
    assert "## 2.5 Synthetic data\n\n8 rows, 20.0% of the training data." in text
    assert "| gen-b | 4 | 10.0% | 2 | - |" in text
    assert "## 2.4 User data\n\nNone recorded by curator." in text
    assert "Not in this draft: registered models' generation and training manifest" in text


def test_training_summary_of_one_set_without_a_store(world):
    summary = curator.api.to_training_summary(world["set"])
    synthetic = summary["categories"][4]
    assert (synthetic["rows"], synthetic["share"]) == (8, 0.2)
    assert [s["name"] for s in summary["unclassified"]["sources"]] == [
        "books", "crawl", "web-2021",
    ]  # fmt: skip


# -- errors ------------------------------------------------------------------------------------


def test_export_errors_are_exact(world, runner, tmp_path, monkeypatch):
    monkeypatch.delenv("CURATOR_STORE", raising=False)
    store = world["store"]
    out = str(tmp_path / "x.json")
    missing = invoke(runner, "export", "croissant", "no-such-set", "-o", out)
    assert missing.exit_code == 1
    assert missing.output == (
        "Error: no manifest at `no-such-set`\n"
        "Hint: pass a manifest.json or the directory that holds it, or, with --store DIR (env "
        "CURATOR_STORE), a manifest id or name\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    wrong = invoke(runner, "export", "card", str(empty), "-o", out)
    assert wrong.exit_code == 1
    assert wrong.output == (
        f"Error: cannot read manifest `{empty / 'manifest.json'}`: No such file or directory\n"
        "Hint: pass a manifest.json or the directory that holds it\n"
    )
    not_in_store = invoke(runner, "export", "openlineage", "nope", "--store", store.root, "-o", out)
    assert not_in_store.output == (
        f"Error: no manifest `nope` in store `{store.root}`\n"
        "Hint: list them with `curator manifest list` (Python: `store.manifests()`)\n"
    )
    no_path = invoke(
        runner, "export", "card", str(tmp_path / "sets" / "gen-9"), "--store", store.root,
        "-o", out,
    )  # fmt: skip
    assert no_path.exit_code == 1
    assert no_path.output == (
        f"Error: no file or directory `{tmp_path / 'sets' / 'gen-9'}` (nor a manifest of that "
        f"id or name in store `{store.root}`)\n"
        "Hint: check the path: pass a set's directory or its manifest.json\n"
    )
    no_summary = invoke(
        runner, "export", "training-summary", "sets/gen-9/manifest.json", "--store", store.root,
        "-o", out,
    )  # fmt: skip
    assert no_summary.output.startswith("Error: no file or directory `sets/gen-9/manifest.json`")
    no_lineage = invoke(
        runner, "export", "training-summary", "nope", "--store", store.root, "-o", out
    )
    assert no_lineage.exit_code == 1
    assert no_lineage.output == (
        f"Error: no manifest or lineage `nope` in store `{store.root}`\n"
        "Hint: list them with `curator manifest list` (Python: `store.manifests()`)\n"
    )
    typo = invoke(runner, "export", "training-summary", "mian", "--store", store.root, "-o", out)
    assert typo.output == (
        f"Error: no manifest or lineage `mian` in store `{store.root}`\n"
        "Hint: did you mean `main`? list them with `curator manifest list` (Python: "
        "`store.manifests()`)\n"
    )
    category = invoke(
        runner, "export", "training-summary", str(world["set"]), "-o", out,
        "--category", "web-2021=synthetic",
    )  # fmt: skip
    assert category.output == (
        "Error: unknown category `synthetic` for source `web-2021`\n"
        "Hint: use one of: public, private, crawled, user, other (synthetic rows are always "
        "synthetic)\n"
    )
    source = invoke(
        runner,
        "export",
        "training-summary",
        str(world["set"]),
        "-o",
        out,
        "--category",
        "web=crawled",
    )
    assert source.output == (
        "Error: no source `web` in the summarised sets\n"
        "Hint: their sources: books, crawl, gen-a-out, gen-b-out, web-2021\n"
    )
    malformed = invoke(
        runner, "export", "training-summary", str(world["set"]), "-o", out, "--category", "web"
    )
    assert malformed.output == (
        "Error: `--category web` is not SOURCE=CATEGORY\nHint: e.g. --category web-2021=crawled\n"
    )
    unwritable = invoke(
        runner, "export", "card", str(world["set"]), "-o", str(tmp_path / "no" / "README.md")
    )
    assert unwritable.output == (
        f"Error: cannot write `{tmp_path / 'no' / 'README.md'}`: No such file or directory\n"
        "Hint: pass -o a file in an existing directory you can write to\n"
    )
    assert not (tmp_path / "x.json").exists()


# -- the Manifest methods (the facade) ----------------------------------------------------------


def test_manifest_methods_give_what_the_functions_give(world, tmp_path):
    from openlineage.client.serde import Serde

    from curator.export.croissant import write_croissant
    from curator.export.summary import write_training_summary

    store = world["store"]
    loaded = curator.Manifest.load(world["set"])
    assert isinstance(loaded, curator.Manifest) and loaded.store is None
    found = store.manifest("m3")
    assert isinstance(found, curator.Manifest) and found.store is store

    # Croissant: in memory and written beside the set, as the function and the writer give it
    assert loaded.to_croissant() == curator.api.to_croissant(world["set"])
    mine, theirs = world["set"] / "facade.json", world["set"] / "function.json"
    assert loaded.to_croissant(mine, license="cc-by-4.0") == write_croissant(
        world["manifest"], theirs, license="cc-by-4.0"
    )
    assert mine.read_text() == theirs.read_text()
    mine.unlink()
    theirs.unlink()

    # a manifest found through the store names the registered models, as `store=` does
    assert found.to_card() == curator.api.to_card("m3", store=store)
    assert found.to_card() != loaded.to_card()
    card = tmp_path / "README.md"
    assert found.to_card(card) == card.read_text() == curator.api.to_card("m3", store=store)

    event = found.to_openlineage(tmp_path / "event.json")
    expected = curator.api.to_openlineage("m3", store=store)
    assert (
        json.loads(Serde.to_json(event))["outputs"]
        == json.loads(Serde.to_json(expected))["outputs"]
    )
    written = json.loads((tmp_path / "event.json").read_text())
    assert written["eventType"] == "COMPLETE" and len(written["outputs"]) == 1

    summary = found.to_training_summary()
    assert summary == curator.api.to_training_summary(world["set"], store=store)
    found.to_training_summary(tmp_path / "summary.md")
    write_training_summary([world["manifest"]], tmp_path / "function.md", store=store)
    assert (tmp_path / "summary.md").read_text() == (tmp_path / "function.md").read_text()
    assert found.to_training_summary(tmp_path / "s.json") == json.loads(
        (tmp_path / "s.json").read_text()
    )
