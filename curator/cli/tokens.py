"""`curator tokens`: token counts for samples already in the store."""

from __future__ import annotations

import click

from curator.cli.app import cli
from curator.cli.options import (
    engine_for,
    engine_options,
    json_option,
    lock_timeout_option,
    open_store_at,
    progress_option,
    store_option,
)
from curator.cli.output import plural, tokenizer_identity


@cli.command("tokens")
@store_option
@click.option(
    "--tokenizer",
    required=True,
    metavar="PATH",
    help="A Hugging Face tokenizer.json on this machine (or a directory holding one); never downloaded.",
)
@click.option("--source", metavar="NAME", help="Count only the samples of this source.")
@engine_options
@lock_timeout_option
@progress_option
@json_option("Print the result as JSON.")
def tokens_command(
    store_path: str | None,
    tokenizer: str,
    source: str | None,
    engine: str,
    ray_address: str | None,
    lock_timeout: float | None,
    progress: bool,
    as_json: bool,
) -> None:
    """Add `n_tokens` to the samples already in the store.

    Each text sample gets its tokens without special tokens. The shards are written again with
    the counts and switched in atomically (the old ones stay on disk, no longer live); content,
    provenance and sample ids are unchanged. Shards this tokenizer already counted are left as
    they are. A `tokens` target in a policy then counts `n_tokens`.

    \b
    Examples:
      curator tokens --tokenizer tokenizer.json
      curator tokens --tokenizer models/llama/ --source web-2021
    """
    from curator.core.output import to_json

    store = open_store_at(store_path)
    with engine_for(engine, ray_address) as runner:
        result = store.tokens(
            tokenizer, source=source, lock_timeout=lock_timeout, progress=progress, engine=runner
        )
    if as_json:
        click.echo(to_json(result.to_json()))
        return
    counted = result.tokenizer
    lines = [
        f"tokens {result.run_id}: {result.samples:,} samples, {result.tokens:,} tokens counted"
        + (f" (source {result.source})" if result.source else ""),
        f"  tokenizer  {counted['path']}",
        f"             {tokenizer_identity(counted)}",
        f"  shards     {plural(result.shards_rewritten, 'shard')} rewritten, "
        f"{result.shards_current:,} already counted, {plural(result.shards_image, 'shard')} of images",
    ]
    for name, counts in sorted(result.by_source.items()):
        lines.append(
            f"  {name:<10} {counts['samples']:>12,} samples {counts['tokens']:>14,} tokens"
        )
    lines.append(f"  time       {result.seconds:>11.2f}s")
    click.echo("\n".join(lines))
