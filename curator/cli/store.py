"""Store commands: init, sql, stats."""

from __future__ import annotations

from typing import Any

import click

from curator.cli.app import cli
from curator.cli.options import json_option, open_store_at, store_option

#: The formats `curator sql` writes (those of `curator.core.output.write_result`).
SQL_FORMATS: tuple[str, ...] = ("table", "csv", "json", "parquet")


@cli.command("init")
@click.argument(
    "store_dir",
    metavar="STORE",
    envvar="CURATOR_STORE",
    type=click.Path(file_okay=False),
    required=False,
)
# Earlier versions also took `--store DIR` here; it still works, but STORE is the one documented way.
@click.option("--store", "store_option_value", hidden=True, type=click.Path(file_okay=False))
def init_command(store_dir: str | None, store_option_value: str | None) -> None:
    """Create a store in directory STORE (env CURATOR_STORE): the directory layout and an empty
    catalog.

    \b
    Examples:
      curator init ./store
      curator init /data/curator-store
    """
    from curator.api import init_store
    from curator.core.errors import StoreError

    target = store_option_value or store_dir
    if not target:
        raise StoreError("no store directory given", "pass it: curator init ./store")
    store = init_store(target)
    click.echo(f"Created store {store.root}")


@cli.command("sql")
@click.argument("query")
@store_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(SQL_FORMATS),
    default="table",
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

    store = open_store_at(store_path)
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
@json_option()
def stats_command(store_path: str | None, as_json: bool) -> None:
    """Rows and content bytes by origin × generation × source.

    \b
    Examples:
      curator stats --store ./store --json
    """
    from curator.core.output import to_json

    stats = open_store_at(store_path).stats()
    if as_json:
        click.echo(to_json(stats.to_json()))
        return
    click.echo(format_stats(stats))


def format_stats(stats: Any) -> str:
    """The stats table: one row per origin × generation × source, then the total."""
    from curator.core.output import human_bytes, render_table

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
