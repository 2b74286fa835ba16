"""Ingest commands: ingest (into a store) and tag (without one)."""

from __future__ import annotations

from typing import Any

import click

from curator.cli.app import cli
from curator.cli.options import (
    engine_for,
    engine_options,
    json_option,
    lock_timeout_option,
    open_store_at,
    progress_option,
    provenance_kwargs,
    provenance_options,
    store_option,
)
from curator.cli.output import (
    first_reject_lines,
    input_output_lines,
    plural,
    reject_codes,
    tokenizer_identity,
)


@cli.command("ingest")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@store_option
@provenance_options(generated_by=True)
@click.option(
    "--tokenizer",
    metavar="PATH",
    help="A Hugging Face tokenizer.json (or a directory holding one): adds `n_tokens`, each "
    "text's tokens without special tokens (null for images). Never downloaded.",
)
@engine_options
@lock_timeout_option
@progress_option
@json_option("Print the summary as JSON.")
def ingest_command(
    inputs: tuple[str, ...],
    store_path: str | None,
    as_json: bool,
    lock_timeout: float | None,
    progress: bool,
    generated_by: str | None,
    tokenizer: str | None,
    engine: str,
    ray_address: str | None,
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
      curator ingest crawl/*.jsonl --source web-2021 --origin real --tokenizer tokenizer.json
    """
    from curator.core.output import human_bytes, to_json

    store = open_store_at(store_path)
    with engine_for(engine, ray_address, jobs=kwargs["jobs"]) as runner:
        result = store.ingest(
            list(inputs),
            lock_timeout=lock_timeout,
            progress=progress,
            generated_by=generated_by,
            tokenizer=tokenizer,
            engine=runner,
            **provenance_kwargs(kwargs),
        )
    if as_json:
        click.echo(to_json(result.to_json()))
        return
    rate = result.rows_read / result.seconds if result.seconds else 0.0
    lines = [
        f"ingest {result.run_id}: {result.status} (source {result.source})",
        f"  files      {result.files:>12,}"
        + (
            f"   ({len(result.ignored_files):,} of unknown format ignored)"
            if result.ignored_files
            else ""
        ),
        f"  rows read  {result.rows_read:>12,}",
        f"  ingested   {result.ingested:>12,}   {human_bytes(result.content_bytes)} of content in "
        + plural(result.shards, "shard"),
        f"  skipped    {result.skipped:>12,}"
        + (f"   ({reject_codes(result.skip_codes)})" if result.skip_codes else ""),
        f"  rejected   {result.rejected:>12,}"
        + (f"   ({reject_codes(result.reject_codes)})" if result.reject_codes else ""),
    ]
    if result.rejects_path:
        lines.append(f"  rejects    {result.rejects_path}")
    lines += first_reject_lines(result.first_rejects)
    if result.tokenizer is not None:
        lines += [
            f"  tokens     {result.tokens or 0:>12,}   counted by {result.tokenizer['path']}",
            f"             {tokenizer_identity(result.tokenizer)}",
        ]
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
@provenance_options(generated_by=False)
@click.option(
    "--tokenizer",
    metavar="PATH",
    help="A Hugging Face tokenizer.json (or a directory holding one): adds `n_tokens`, each "
    "text's tokens without special tokens (null for images). Never downloaded.",
)
@engine_options
@progress_option
@json_option("Print the summary as JSON.")
def tag_command(
    inputs: tuple[str, ...],
    out: str,
    as_json: bool,
    progress: bool,
    tokenizer: str | None,
    engine: str,
    ray_address: str | None,
    **kwargs: Any,
) -> None:
    """Write inputs as Parquet with provenance columns, without a store.

    Every original column is kept, in its original order, followed by the provenance columns.
    The summary says which output files each input became. Rejected records go to
    OUT/rejects/rejects.jsonl.

    \b
    Examples:
      curator tag shards/*.parquet --out tagged/ --source web-2021 --origin real
      curator tag a.jsonl --out tagged/ --source web --origin real --tokenizer tokenizer.json
    """
    from curator.core.errors import ProvenanceError
    from curator.core.output import to_json
    from curator.ingest.tag import tag

    if kwargs["origin"] is None:
        raise ProvenanceError("no origin given", "pass --origin real, synthetic or unknown")
    with engine_for(engine, ray_address, jobs=kwargs["jobs"]) as runner:
        result = tag(
            list(inputs),
            out,
            progress=progress,
            engine=runner,
            tokenizer=tokenizer,
            **provenance_kwargs(kwargs),
        )
    if as_json:
        click.echo(to_json(result.to_json()))
        return
    click.echo(
        f"tag {result.run_id}: {result.rows_read:,} rows read, {result.written:,} written to "
        f"{plural(len(result.files), 'file')} in {result.out}, {result.rejected:,} rejected"
        + (f" ({reject_codes(result.reject_codes)})" if result.reject_codes else "")
    )
    click.echo("\n".join(input_output_lines(result.outputs_by_input, result.out)))
    if result.tokenizer is not None:
        click.echo(
            f"tokens {result.tokens or 0:,} counted by {result.tokenizer['path']} "
            f"({tokenizer_identity(result.tokenizer)})"
        )
    if result.rejects_path:
        from curator.api import first_rejects

        click.echo(f"rejects: {result.rejects_path}")
        click.echo(
            "\n".join(first_reject_lines(first_rejects(result.rejects_path, result.reject_codes)))
        )
