"""Export commands: export croissant|card|openlineage|training-summary."""

from __future__ import annotations

from typing import Any

import click

from curator.cli.app import cli
from curator.cli.options import open_store_at, store_option


def _output_option(help: str) -> Any:
    return click.option(
        "-o", "--output", "output", required=True, type=click.Path(dir_okay=False), help=help
    )


def _store(store_path: str | None) -> Any:
    """The store when one is named (--store or CURATOR_STORE), else None: a set named by its
    path needs none."""
    return open_store_at(store_path) if store_path else None


def _note_omitted(store: Any) -> None:
    if store is None:
        from curator.export.facts import WITHOUT_STORE

        click.echo(f"note: not included: {WITHOUT_STORE}")


@cli.group("export")
def export_group() -> None:
    """Export a set's provenance in the formats others read: Croissant 1.1 (with RAI and
    per-record PROV-O), a Hugging Face dataset card, an OpenLineage run event, and a draft of the
    AI Act training-content summary.

    \b
    Examples:
      curator export croissant train/gen-2 -o train/gen-2/croissant.json
      curator export card train/gen-2 -o train/gen-2/README.md
    """


@export_group.command("croissant")
@click.argument("ident", metavar="MANIFEST")
@store_option
@_output_option(
    "The JSON-LD file to write, in the set's directory or above it (it names the set's files by "
    "relative path)."
)
@click.option(
    "--license", "license_", metavar="LICENSE", help="The set's license (URL or SPDX id)."
)
def export_croissant(ident: str, store_path: str | None, output: str, license_: str | None) -> None:
    """Write a set's Croissant 1.1 JSON-LD: its files with sha256, a record set of its columns,
    each record's provenance mapped to PROV-O (model: prov:wasGeneratedBy, parent:
    prov:wasDerivedFrom), and the RAI 1.0 properties curator can fill. It passes `mlcroissant
    validate`, and mlcroissant loads its records. MANIFEST: the set's directory or manifest.json,
    or (with --store) a manifest id or name.

    \b
    Examples:
      curator export croissant train/gen-2 -o train/gen-2/croissant.json --license cc-by-4.0
    """
    from curator.export.croissant import write_croissant
    from curator.export.target import resolve_manifest

    store = _store(store_path)
    manifest = resolve_manifest(ident, store)
    write_croissant(manifest, output, license=license_, store=store)
    click.echo(
        f"Wrote {output}: Croissant 1.1 + RAI 1.0, {manifest.rows:,} records in "
        f"{len(manifest.outputs):,} file(s) of manifest {manifest.manifest_id}"
    )
    _note_omitted(store)


@export_group.command("card")
@click.argument("ident", metavar="MANIFEST")
@store_option
@_output_option("The dataset card to write (README.md).")
@click.option(
    "--license", "license_", metavar="LICENSE", help="The set's license (a Hub license id)."
)
def export_card(ident: str, store_path: str | None, output: str, license_: str | None) -> None:
    """Write a Hugging Face dataset card for a set: YAML metadata (tags, `synthetic` when it holds
    synthetic rows, size category, source datasets, its files) and the composition, sources,
    models, policy and constraint report. Nothing is uploaded. MANIFEST: the set's directory or
    manifest.json, or (with --store) a manifest id or name.

    \b
    Examples:
      curator export card train/gen-2 -o train/gen-2/README.md
    """
    from curator.export.card import write_card
    from curator.export.target import resolve_manifest

    store = _store(store_path)
    manifest = resolve_manifest(ident, store)
    write_card(manifest, output, license=license_, store=store)
    click.echo(f"Wrote {output}: dataset card of manifest {manifest.manifest_id}")
    _note_omitted(store)


@export_group.command("openlineage")
@click.argument("ident", metavar="MANIFEST")
@store_option
@_output_option("The JSON file to write the run event to.")
@click.option(
    "--url",
    metavar="URL",
    help="Also post the event to this OpenLineage endpoint (http://HOST:PORT; the event goes to "
    "/api/v1/lineage there).",
)
def export_openlineage(ident: str, store_path: str | None, output: str, url: str | None) -> None:
    """Write the OpenLineage run event of the assembly that made a set: a COMPLETE run with the
    store's shards as inputs and the set as output, with a curator provenance facet and one
    subset facet per mix component (fresh real, used real, synthetic by generation, unknown).
    MANIFEST: the set's directory or manifest.json, or (with --store) a manifest id or name.

    \b
    Examples:
      curator export openlineage train/gen-2 -o gen-2.openlineage.json --url http://localhost:5000
    """
    from curator.export.openlineage import post_openlineage, write_openlineage
    from curator.export.target import resolve_manifest

    store = _store(store_path)
    manifest = resolve_manifest(ident, store)
    event = write_openlineage(manifest, output, store=store)
    click.echo(f"Wrote {output}: OpenLineage COMPLETE run event of manifest {manifest.manifest_id}")
    if url:
        post_openlineage(event, url)
        click.echo(f"Posted it to {url}")
    _note_omitted(store)


@export_group.command("training-summary")
@click.argument("ident", metavar="MANIFEST|LINEAGE")
@store_option
@_output_option("The file to write: Markdown, or JSON for a .json file (see --format).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    show_default="json for a .json file, else markdown",
    help="Output format.",
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    metavar="SOURCE=CATEGORY",
    help="The category of a source of real or unknown rows: public, private, crawled, user or "
    "other (repeatable); synthetic rows are always synthetic; other sources stay unclassified.",
)
def export_training_summary(
    ident: str, store_path: str | None, output: str, fmt: str | None, categories: tuple[str, ...]
) -> None:
    """Write a DRAFT of Section 2 (list of data sources) of the public summary of training
    content of the AI Act (Art. 53(1)(d), the Commission's July 2025 template): the sources by
    category, synthetic data with the models that made it, their sizes and shares. A person
    completes and checks it. MANIFEST|LINEAGE: a set's directory or manifest.json, or (with
    --store) a manifest id or name, or a lineage (all its sets).

    \b
    Examples:
      curator export training-summary main --store ./store -o summary.md --category web-2021=crawled
    """
    from curator.core.errors import InputError
    from curator.export.summary import write_training_summary
    from curator.export.target import resolve_manifests

    mapping: dict[str, str] = {}
    for item in categories:
        source, sep, category = item.partition("=")
        if not sep or not source or not category:
            raise InputError(
                f"`--category {item}` is not SOURCE=CATEGORY", "e.g. --category web-2021=crawled"
            )
        mapping[source] = category
    store = _store(store_path)
    manifests = resolve_manifests(ident, store)
    summary = write_training_summary(manifests, output, fmt=fmt, categories=mapping, store=store)
    synthetic = summary["categories"][4]
    click.echo(
        f"Wrote {output}: DRAFT training-content summary (Section 2) of {len(manifests):,} "
        f"manifest(s); synthetic data {100 * synthetic['share']:.1f}% "
        f"({len(synthetic['models']):,} model(s))"
    )
    if summary["unclassified"]["sources"]:
        names = ", ".join(s["name"] for s in summary["unclassified"]["sources"])
        click.echo(f"note: unclassified sources (assign them with --category): {names}")
    _note_omitted(store)
