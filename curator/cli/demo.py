"""`curator demo`: the README's first command."""

from __future__ import annotations

import click

from curator.cli import cli


@cli.command("demo")
@click.argument("directory", default="curator-demo", type=click.Path(file_okay=False))
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the generated samples."
)
def demo_command(directory: str, seed: int) -> None:
    """Build a demo store from real text that ships with Python, plus synthetic and unknown
    samples, and print its composition. Offline; a few seconds.

    DIRECTORY (default ./curator-demo) must be new, empty, or an earlier demo, which is replaced.

    \b
    Example:
      curator demo
      curator sql --store curator-demo/store "SELECT origin, count(*) FROM samples GROUP BY 1"
    """
    from curator.cli.store import format_stats
    from curator.demo import run_demo

    result = run_demo(directory, seed=seed, echo=click.echo)
    click.echo("")
    click.echo(f"$ curator stats --store {result.store.root}")
    click.echo(format_stats(result.store.stats()))
    click.echo("")
    click.echo(
        f'Store: {result.store.root}  (try: curator sql --store {result.store.root} "SELECT * FROM samples LIMIT 5")'
    )
