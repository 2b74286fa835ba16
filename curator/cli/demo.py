"""`curator demo` (the README's first command) and `curator report`."""

from __future__ import annotations

import click

from curator.cli.app import cli
from curator.cli.options import json_option, open_store_at, store_option


@cli.command("demo")
@click.argument("directory", default="curator-demo", type=click.Path(file_okay=False))
@click.option(
    "--generations",
    type=click.IntRange(2, 50),
    default=6,
    help="Generations of each loop.",
)
@click.option(
    "--text-rows",
    type=click.IntRange(20),
    default=500,
    help="Rows of each text training set (and samples each text model writes).",
)
@click.option(
    "--digit-rows",
    type=click.IntRange(20),
    default=300,
    help="The same for the digits.",
)
@click.option(
    "--floor",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    help="min_fresh_real_fraction of the fresh-floor loops from generation 2 on (the real source "
    "is capped at it, so the rest is the previous generation's output).",
)
@click.option(
    "--digits/--no-digits",
    default=None,
    show_default="when scikit-learn (the demo extra) is installed",
    help="Run the digits loops too.",
)
@click.option("--report/--no-report", default=True, help="Write DIR/report.")
@click.option("--seed", type=int, default=0, help="Seed of every random choice.")
def demo_command(
    directory: str,
    generations: int,
    text_rows: int,
    digit_rows: int,
    floor: float,
    digits: bool | None,
    report: bool,
    seed: int,
) -> None:
    """Show the self-consuming loop: models trained generation after generation on their own
    output lose diversity and quality; with a fresh-real floor they hold. Offline: about 40 s on
    an idle 2-core machine, up to 2 minutes when it is busy; each step is named on stderr as it
    starts.

    Real data every machine has: Python's own documentation (text, written by people) and, with
    `pip install 'curator[demo]'`, the handwritten digits scikit-learn ships. Two lineages per
    modality run side by side with curator's own operations — assemble under a policy, train a
    small real model on the manifest's shards (a word bigram model; a Gaussian mixture for
    digits), evaluate it on held-out real data, `model register` it with its metrics, ingest its
    samples with `--generated-by`: `no-floor` (every generation after the first trains only on
    the previous one's output) and `fresh-floor` (min_fresh_real_fraction = --floor from
    generation 2 on). Then a crawl of unknown origin goes through dedup, infer and
    contamination, and the report is written.

    DIRECTORY (default ./curator-demo) must be new, empty, or an earlier demo, which is replaced.
    It holds store/, the policies, the training sets, demo.json and report/index.html.

    Afterwards, see a lineage's audit with:
    curator lineage report text-fresh-floor --store curator-demo/store

    \b
    Examples:
      curator demo
      curator demo ./demo --generations 10 --text-rows 300 --no-digits --floor 0.5
    """
    from curator.loop.demo import DemoConfig, format_metrics, run_demo

    config = DemoConfig(
        generations=generations,
        text_rows=text_rows,
        digit_rows=digit_rows,
        floor=floor,
        digits=digits,
        report=report,
        seed=seed,
    )
    # What the demo found goes to stdout; the step it is on, to stderr.
    result = run_demo(
        directory, config, echo=click.echo, progress=lambda line: click.echo(line, err=True)
    )
    click.echo("")
    click.echo(
        "Per generation, measured against held-out real data (text: distinct words and "
        "bigrams in the model's samples, perplexity of held-out text; digits: Fréchet distance "
        "to held-out digits, pixel variance of the samples):"
    )
    click.echo(format_metrics(result.metrics))
    click.echo("")
    click.echo(f"Store:  {result.store.root}")
    click.echo(f"Data:   {result.directory}/demo.json")
    if result.report:
        click.echo(f"Report: {result.report}")
    click.echo(f"Try:    curator lineage report text-fresh-floor --store {result.store.root}")


@cli.command("report")
@store_option
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for index.html and the PNG/SVG plots (new, empty, or an earlier report).",
)
@click.option("--lineage", show_default="every lineage", help="Report this lineage only.")
@click.option(
    "--simulation/--no-simulation",
    default=True,
    help="Include the Gaussian self-consuming loop: its three loops with maximum-likelihood fits "
    "to 20 samples per generation, where the fully synthetic one collapses.",
)
@json_option("Print where everything went, as JSON.")
def report_command(
    store_path: str | None, out: str, lineage: str | None, simulation: bool, as_json: bool
) -> None:
    """Write a self-contained HTML report of the store (it opens with no network): composition
    of every manifest (fresh real, used real, synthetic by generation, unknown), generation
    depth, the metrics models were registered with per generation, generated images per
    generation, near-duplicate clusters, contamination, and the Gaussian loop. Every plot is
    also written as PNG and SVG.

    \b
    Examples:
      curator report --store ./store --out report/
      curator report --lineage main --out report-main/ --no-simulation
    """
    from curator.core.output import to_json
    from curator.loop.report import build_report

    result = build_report(open_store_at(store_path), out, lineage=lineage, simulation=simulation)
    if as_json:
        click.echo(to_json(result.to_json()))
        return
    click.echo(f"Report: {result.index}")
    click.echo(f"  sections  {', '.join(result.sections)}")
    click.echo(f"  figures   {len(result.figures):,} files (PNG and SVG) in {result.directory}")
