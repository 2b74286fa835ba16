"""Store commands: init, ingest, tag, sql, stats."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from curator.cli import cli
from curator.core.output import OUTPUT_FORMATS, human_bytes, parse_size, render_table, to_json

F = Callable[..., Any]


def store_option(f: F) -> F:
    return click.option(
        "--store",
        "store_path",
        envvar="CURATOR_STORE",
        show_envvar=True,
        type=click.Path(file_okay=False),
        help="The store directory (env CURATOR_STORE).",
    )(f)


def _open(store_path: str | None) -> Any:
    from curator.api import open_store

    return open_store(store_path)


class _Size(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _Date(click.ParamType):
    name = "DATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        from curator.core.provenance import parse_timestamp

        try:
            return parse_timestamp(str(value))
        except ValueError as exc:
            self.fail(f"{exc} (examples: 2021-06-01, 2021-06-01T12:00:00Z)", param, ctx)


def _renames(values: tuple[str, ...]) -> dict[str, str]:
    renames: dict[str, str] = {}
    for value in values:
        old, sep, new = value.partition("=")
        if not sep or not old or not new:
            raise click.BadParameter(f"{value!r} is not OLD=NEW", param_hint="--rename-column")
        renames[old] = new
    return renames


def provenance_options(f: F) -> F:
    """The provenance flags shared by ingest and tag."""
    from curator.ingest.readers import INPUT_FORMATS

    options = [
        click.option(
            "--source",
            required=True,
            help="Dataset or crawl name (letters, digits, . _ -); prefixes every sample_id.",
        ),
        click.option(
            "--origin",
            type=click.Choice(["real", "synthetic", "unknown"]),
            help="Declared origin of every sample (required unless --generated-by).",
        ),
        click.option(
            "--generation",
            type=click.IntRange(0),
            help="0 for real (default); N >= 1 for synthetic (required).",
        ),
        click.option("--model", help="The generator of synthetic samples."),
        click.option(
            "--confidence",
            type=click.FloatRange(0, 1),
            default=1.0,
            show_default=True,
            help="origin_confidence of the declared label.",
        ),
        click.option(
            "--collected-at",
            type=_Date(),
            help="When every sample was created or captured (UTC unless a zone is given).",
        ),
        click.option(
            "--collected-at-column",
            metavar="COL",
            help="Input column holding each sample's creation time.",
        ),
        click.option(
            "--id-column",
            metavar="COL",
            help="Input column whose value is the sample key (default: file and line/row).",
        ),
        click.option(
            "--text-column",
            metavar="COL",
            default="text",
            show_default=True,
            help="Input column holding the text.",
        ),
        click.option(
            "--image-column",
            metavar="COL",
            help="Input column holding image bytes (tabular inputs).",
        ),
        click.option(
            "--parent-id-column",
            metavar="COL",
            help="Input column holding the sample_id (SOURCE/KEY) of the sample this one was derived from.",
        ),
        click.option(
            "--rename-column",
            "rename_column",
            multiple=True,
            metavar="OLD=NEW",
            help="Rename an input column first (repeatable), e.g. an input column named `source`.",
        ),
        click.option(
            "--format",
            "input_format",
            type=click.Choice(["auto", *INPUT_FORMATS]),
            default="auto",
            show_default=True,
            help="Input format (auto: by file name).",
        ),
        click.option(
            "--strict",
            is_flag=True,
            help="Any rejected record fails the run; nothing is committed.",
        ),
        click.option(
            "--allow-empty",
            is_flag=True,
            help="Accept a run that keeps no record, or that rejects whole files for a missing "
            "column (by default it fails and keeps nothing).",
        ),
        click.option(
            "--jobs", "-j", type=click.IntRange(1), help="Worker processes (default: all cores)."
        ),
        click.option(
            "--shard-size", type=_Size(), help="Target content bytes per shard (default 256MiB)."
        ),
        click.option(
            "--max-image-pixels",
            type=click.IntRange(1),
            default=89_478_485,
            show_default=True,
            help="Larger images are rejected (decompression-bomb guard).",
        ),
        click.option(
            "--max-record-bytes",
            type=_Size(),
            default="64MiB",
            show_default=True,
            help="Longer JSON Lines lines and CSV records are rejected (record_too_large).",
        ),
        click.option(
            "--batch-rows",
            type=click.IntRange(1),
            default=8192,
            show_default=True,
            help="Records per batch (memory per worker grows with it).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _provenance_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": kwargs["source"],
        "origin": kwargs["origin"],
        "generation": kwargs["generation"],
        "model": kwargs["model"],
        "confidence": kwargs["confidence"],
        "collected_at": kwargs["collected_at"],
        "collected_at_column": kwargs["collected_at_column"],
        "id_column": kwargs["id_column"],
        "text_column": kwargs["text_column"],
        "image_column": kwargs["image_column"],
        "parent_id_column": kwargs["parent_id_column"],
        "rename_columns": _renames(kwargs["rename_column"]),
        "input_format": kwargs["input_format"],
        "strict": kwargs["strict"],
        "allow_empty": kwargs["allow_empty"],
        "jobs": kwargs["jobs"],
        "shard_bytes": kwargs["shard_size"],
        "max_image_pixels": kwargs["max_image_pixels"],
        "batch_rows": kwargs["batch_rows"],
        "max_record_bytes": kwargs["max_record_bytes"],
    }


def _codes(codes: dict[str, int]) -> str:
    return ", ".join(
        f"{code}: {count:,}"
        for code, count in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _first_reject_lines(first: dict[str, str]) -> list[str]:
    """The first rejected record of each reason, which says how to fix it."""
    return [f"    {code}: {reason}" for code, reason in first.items()]


@cli.command("init")
@click.argument("store_dir", metavar="STORE", type=click.Path(file_okay=False), required=False)
@store_option
def init_command(store_dir: str | None, store_path: str | None) -> None:
    """Create a store: the directory layout and an empty catalog.

    \b
    Example:
      curator init ./store
      export CURATOR_STORE=./store
    """
    from curator.api import init_store
    from curator.core.errors import StoreError

    target = store_dir or store_path
    if not target:
        raise StoreError("no store directory given", "pass it: curator init ./store")
    store = init_store(target)
    click.echo(f"Created store {store.root}")


@cli.command("ingest")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@store_option
@provenance_options
@click.option(
    "--generated-by",
    metavar="MODEL",
    help="A registered model made every sample: origin synthetic, generation = its generation + 1.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0),
    help="Seconds to wait for another writer (default 120; env CURATOR_LOCK_TIMEOUT).",
)
@click.option("--progress/--no-progress", default=True, help="Progress bar on a terminal.")
def ingest_command(
    inputs: tuple[str, ...],
    store_path: str | None,
    as_json: bool,
    lock_timeout: float | None,
    progress: bool,
    generated_by: str | None,
    **kwargs: Any,
) -> None:
    """Add input records to the store, tagged with provenance.

    INPUT is a file, directory or glob: JSON Lines (.jsonl, .gz, .zst), Parquet, CSV, text files
    (one sample each), images (PNG, JPEG, WebP) or WebDataset tar files. Bad records go to
    STORE/rejects/<run>/ with their reason; the good ones are kept. Ingesting the same input again
    skips what is already there.

    \b
    Examples:
      curator ingest crawl/*.jsonl.zst --source web-2021 --origin real --collected-at 2021-06-01
      curator ingest gen.parquet --source gen-v3 --origin synthetic --generation 1 --model v3
      curator ingest photos/ --source photos --origin unknown --format image
      curator ingest samples.jsonl --source ngram-1-out --generated-by ngram-1
    """
    store = _open(store_path)
    result = store.ingest(
        list(inputs),
        lock_timeout=lock_timeout,
        progress=progress,
        generated_by=generated_by,
        **_provenance_kwargs(kwargs),
    )
    if as_json:
        click.echo(to_json(result.to_json()))
        return
    rate = result.rows_read / result.seconds if result.seconds else 0.0
    lines = [
        f"ingest {result.run_id}: {result.status} (source {result.source})",
        f"  files      {result.files:>12,}"
        + (
            f"   ({len(result.ignored_files)} of unknown format ignored)"
            if result.ignored_files
            else ""
        ),
        f"  rows read  {result.rows_read:>12,}",
        f"  ingested   {result.ingested:>12,}   {human_bytes(result.content_bytes)} of content in {result.shards} shard{'s' if result.shards != 1 else ''}",
        f"  skipped    {result.skipped:>12,}"
        + (f"   ({_codes(result.skip_codes)})" if result.skip_codes else ""),
        f"  rejected   {result.rejected:>12,}"
        + (f"   ({_codes(result.reject_codes)})" if result.reject_codes else ""),
    ]
    if result.rejects_path:
        lines.append(f"  rejects    {result.rejects_path}")
    lines += _first_reject_lines(result.first_rejects)
    lines.append(f"  time       {result.seconds:>11.2f}s   {rate:,.0f} rows/s")
    click.echo("\n".join(lines))


@cli.command("tag")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for the tagged shards (new or empty).",
)
@provenance_options
@click.option("--progress/--no-progress", default=True, help="Progress bar on a terminal.")
def tag_command(
    inputs: tuple[str, ...], out: str, as_json: bool, progress: bool, **kwargs: Any
) -> None:
    """Write inputs as Parquet with provenance columns, without a store.

    Every original column is kept, in its original order, followed by the provenance columns.
    Rejected records go to OUT/rejects/rejects.jsonl.

    \b
    Example:
      curator tag shards/*.parquet --out tagged/ --source web-2021 --origin real
    """
    from curator.core.errors import ProvenanceError
    from curator.ingest.tag import tag

    if kwargs["origin"] is None:
        raise ProvenanceError("no origin given", "pass --origin real, synthetic or unknown")
    result = tag(list(inputs), out, progress=progress, **_provenance_kwargs(kwargs))
    if as_json:
        click.echo(to_json(result.to_json()))
        return
    click.echo(
        f"tag {result.run_id}: {result.rows_read:,} rows read, {result.written:,} written to "
        f"{len(result.files)} file{'s' if len(result.files) != 1 else ''} in {result.out}, "
        f"{result.rejected:,} rejected"
        + (f" ({_codes(result.reject_codes)})" if result.reject_codes else "")
    )
    if result.rejects_path:
        from curator.api import first_rejects

        click.echo(f"rejects: {result.rejects_path}")
        click.echo(
            "\n".join(_first_reject_lines(first_rejects(result.rejects_path, result.reject_codes)))
        )


@cli.command("sql")
@click.argument("query")
@store_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(OUTPUT_FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write to this file instead of standard output (required for parquet).",
)
@click.option(
    "--max-rows",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Rows a table shows (csv, json and parquet write every row).",
)
def sql_command(
    query: str, store_path: str | None, fmt: str, output: str | None, max_rows: int
) -> None:
    """Run a read-only SQL query over the store's catalog.

    One query (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE); it reads the catalog and the live
    shards and nothing else. Statements that write (COPY, EXPORT, ATTACH, SET, …) are refused: write
    a result with --format … -o FILE (outside the store).

    Tables and views: samples (every row of the live shards), shards, runs, shard_composition,
    composition, columns, manifests, usage (which samples each manifest used), models,
    lineage_edges (sample → manifest → model → sample) and duplicates (near-duplicate clusters).

    \b
    Examples:
      curator sql "SELECT origin, count(*) FROM samples GROUP BY 1"
      curator sql "SELECT * FROM samples WHERE origin = 'real'" --format parquet -o real.parquet
    """
    import sys

    from curator.core.errors import InputError
    from curator.core.output import write_result

    store = _open(store_path)
    if fmt == "parquet":
        if not output:
            raise InputError("`--format parquet` needs `--output FILE`", "add -o result.parquet")
        rows = store.export(query, output)
        click.echo(f"wrote {rows:,} rows to {output}", err=True)
        return
    if output:
        store.outside_store(output)
    with store.sql_batches(query) as reader:
        if output:
            with open(output, "w", encoding="utf-8", newline="") as handle:
                rows = write_result(reader, fmt, handle, max_table_rows=max_rows)
            click.echo(f"wrote {rows:,} rows to {output}", err=True)
        else:
            write_result(reader, fmt, sys.stdout, max_table_rows=max_rows)


@cli.command("stats")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats_command(store_path: str | None, as_json: bool) -> None:
    """Rows and content bytes by origin × generation × source.

    \b
    Example:
      curator stats --store ./store --json
    """
    stats = _open(store_path).stats()
    if as_json:
        click.echo(to_json(stats.to_json()))
        return
    click.echo(format_stats(stats))


def format_stats(stats: Any) -> str:
    total = stats.total_rows or 1
    rows = [
        (
            r.origin,
            "-" if r.generation is None else r.generation,
            r.source,
            r.rows,
            f"{100 * r.rows / total:.1f}%",
            human_bytes(r.content_bytes),
        )
        for r in stats.rows
    ]
    rows.append(
        (
            "total",
            "",
            "",
            stats.total_rows,
            "100.0%" if stats.total_rows else "-",
            human_bytes(stats.total_bytes),
        )
    )
    return render_table(
        ["origin", "generation", "source", "rows", "share", "content"],
        rows,
        right=[False, True, False, True, True, True],
    )
