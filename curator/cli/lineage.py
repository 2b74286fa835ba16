"""Generation commands: model register|list|show, lineage show|report."""

from __future__ import annotations

from typing import Any

import click

from curator.cli import cli
from curator.cli.store import _open, store_option


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@cli.group("model")
def model_group() -> None:
    """Register the models trained on assembled sets, so their samples get a generation.

    \b
    Example:
      curator model register ngram-1 --trained-on gen-1
      curator ingest out.jsonl --source ngram-1-out --generated-by ngram-1
    """


@model_group.command("register")
@click.argument("name")
@click.option(
    "--trained-on",
    metavar="MANIFEST",
    help="The manifest it was trained on (id, name or path to manifest.json).",
)
@click.option(
    "--generation",
    type=click.IntRange(0, 999),
    help="Declare the generation, 0-999 (a model trained outside curator, or on unknown data).",
)
@click.option("--notes", help="Free text kept with the model.")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME=VALUE",
    help="What the model scored when evaluated, e.g. perplexity=41.2 (repeat for more); "
    "`curator report` plots them per generation.",
)
@click.option(
    "--lock-timeout", type=click.FloatRange(0), help="Seconds to wait for another writer."
)
@click.option("--json", "as_json", is_flag=True, help="Print the model as JSON.")
@store_option
def model_register(
    name: str,
    trained_on: str | None,
    generation: int | None,
    notes: str | None,
    metrics: tuple[str, ...],
    lock_timeout: float | None,
    as_json: bool,
    store_path: str | None,
) -> None:
    """Register model NAME. Its generation is the deepest generation among the samples of the
    manifest it was trained on; the samples it generates are that + 1.

    \b
    Examples:
      curator model register ngram-1 --trained-on gen-1 --notes "3-gram, 10k steps"
      curator model register ngram-2 --trained-on gen-2 --metric perplexity=41.2
      curator model register gpt-4o --generation 1 --notes "third-party, declared"
    """
    from curator.core.output import to_json

    model = _open(store_path).register_model(
        name,
        trained_on=trained_on,
        generation=generation,
        notes=notes,
        metrics=_parse_metrics(metrics),
        lock_timeout=lock_timeout,
    )
    if as_json:
        click.echo(to_json(model.to_json()))
        return
    click.echo(
        f"Registered model {model.name}: generation {model.generation}"
        + (" (declared)" if model.declared else f" (deepest in manifest {model.trained_on})")
        + f"; its samples will be generation {model.generation + 1}"
    )
    if model.fractions:
        click.echo(_training_line(model.fractions, model.synthetic_by_generation, model.unit))
    if model.fractions.get("unknown"):
        click.echo(
            f"  note: {100 * model.fractions['unknown']:.1f}% of its training data was of unknown "
            "origin (or below the policy's min_origin_confidence); its generation counts only "
            "the depth of the labelled samples (to declare a deeper one, register under a new name "
            "with --trained-on and --generation N)."
        )


def _parse_metrics(pairs: tuple[str, ...]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if key.strip() in metrics:
            raise click.BadParameter(
                f"metric `{key.strip()}` is given twice", param_hint="'--metric'"
            )
        try:
            if not sep:
                raise ValueError
            metrics[key.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"{pair!r} is not NAME=NUMBER, e.g. perplexity=41.2", param_hint="'--metric'"
            ) from None
    return metrics


def _training_line(
    fractions: dict[str, float], by_generation: dict[str, float], unit: str | None
) -> str:
    synthetic = _pct(fractions.get("synthetic"))
    if by_generation:
        synthetic += " (" + ", ".join(f"gen {g}: {_pct(f)}" for g, f in by_generation.items()) + ")"
    return (
        f"  trained on (by {unit}): real {_pct(fractions.get('real'))}, "
        f"fresh real {_pct(fractions.get('fresh_real'))}, synthetic {synthetic}, "
        f"unknown {_pct(fractions.get('unknown'))}"
    )


@model_group.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def model_list(store_path: str | None, as_json: bool) -> None:
    """Every registered model with its generation and training mix.

    \b
    Example:
      curator model list --store ./store
    """
    from curator.core.output import render_table, to_json

    models = _open(store_path).models()
    if as_json:
        click.echo(to_json([m.to_json() for m in models]))
        return
    if not models:
        click.echo(
            "No model is registered. Register one: curator model register NAME --trained-on MANIFEST"
        )
        return
    click.echo(
        render_table(
            [
                "model",
                "gen",
                "declared",
                "trained on",
                "lineage",
                "real",
                "fresh",
                "synthetic",
                "unknown",
            ],
            [
                (
                    m.name,
                    m.generation,
                    "yes" if m.declared else "no",
                    m.trained_on or "-",
                    m.lineage or "-",
                    _pct(m.fractions.get("real")),
                    _pct(m.fractions.get("fresh_real")),
                    _pct(m.fractions.get("synthetic")),
                    _pct(m.fractions.get("unknown")),
                )
                for m in models
            ],
        )
    )


@model_group.command("show")
@click.argument("name")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def model_show(name: str, store_path: str | None, as_json: bool) -> None:
    """Show one model: generation, what it was trained on, and how many samples it made.

    \b
    Example:
      curator model show ngram-1
    """
    from curator.core.output import to_json

    store = _open(store_path)
    model = store.model(name)
    made = store.sql(
        "SELECT generation, count(*) AS n FROM samples WHERE model = '"
        + name.replace("'", "''")
        + "' GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    if as_json:
        click.echo(to_json({**model.to_json(), "samples": made}))
        return
    lines = [
        f"model {model.name}",
        f"  generation     {model.generation}" + (" (declared)" if model.declared else ""),
        f"  trained on     {model.trained_on or '- (trained outside curator)'}",
        f"  lineage        {model.lineage or '-'}",
        f"  registered     {model.registered_at.isoformat(timespec='seconds')}",
    ]
    if model.training_rows is not None:
        lines.append(f"  training rows  {model.training_rows:,}")
    if model.fractions:
        lines.append(_training_line(model.fractions, model.synthetic_by_generation, model.unit))
    if model.metrics:
        lines.append(
            "  metrics        " + ", ".join(f"{k} {v:,.4g}" for k, v in model.metrics.items())
        )
    if model.notes:
        lines.append(f"  notes          {model.notes}")
    lines.append(
        "  samples        "
        + (
            ", ".join(f"{r['n']:,} of generation {r['generation']}" for r in made)
            if made
            else "none ingested yet"
        )
    )
    click.echo("\n".join(lines))


@cli.group("lineage")
def lineage_group() -> None:
    """Trace where samples, models and manifests came from, and audit a lineage.

    \b
    Example:
      curator lineage show ngram-2
      curator lineage report main
    """


@lineage_group.command("show")
@click.argument("ident", metavar="SAMPLE_ID|MODEL|MANIFEST")
@store_option
@click.option(
    "--depth",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Levels to follow upstream; deeper nodes are marked as cut.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the tree as JSON.")
def lineage_show(ident: str, store_path: str | None, depth: int, as_json: bool) -> None:
    """The chain behind a sample, a model or a manifest: sample ← model ← manifest ← the
    sources and generations it drew on ← the models that made them ← …

    \b
    Examples:
      curator lineage show ngram-2-out/samples.jsonl:17
      curator lineage show ngram-2 --json
    """
    from rich.console import Console

    from curator.core.output import to_json
    from curator.lineage.tree import render_tree

    node = _open(store_path).lineage(ident, max_depth=depth)
    if as_json:
        click.echo(to_json(node.to_json()))
        return
    # On a terminal, its width; in a pipe or file, wide enough that deep trees do not wrap.
    terminal = Console()
    width = terminal.width if terminal.is_terminal else 100 + 8 * depth
    console = Console(width=max(100, width), soft_wrap=False, highlight=False)
    with console.capture() as capture:
        console.print(render_tree(node))
    click.echo(capture.get().rstrip("\n"))


@lineage_group.command("report")
@click.argument("lineage")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lineage_report(lineage: str, store_path: str | None, as_json: bool) -> None:
    """The generation audit of LINEAGE: for each manifest, in order, the fractions of real,
    fresh real, synthetic by generation and unknown, the deepest generation, and whether each
    policy constraint held, with its margin.

    \b
    Example:
      curator lineage report main --json > audit.json
    """
    from curator.cli.assemble import format_constraint
    from curator.core.output import render_table, to_json

    report = _open(store_path).lineage_report(lineage)
    if as_json:
        click.echo(to_json(report))
        return
    entries: list[dict[str, Any]] = report["manifests"]
    click.echo(f"lineage {lineage}: {len(entries)} manifest{'s' if len(entries) != 1 else ''}")
    click.echo(
        render_table(
            ["#", "manifest", "rows", "real", "fresh real", "synthetic", "by generation", "unknown", "deepest", "models", "constraints"],
            [
                (
                    e["sequence"],
                    e["name"] or e["manifest_id"],
                    e["rows"],
                    _pct(e["fractions"]["real"]),
                    _pct(e["fractions"]["fresh_real"]),
                    _pct(e["fractions"]["synthetic"]),
                    ", ".join(f"{g}: {_pct(f)}" for g, f in e["synthetic_by_generation"].items()) or "-",
                    _pct(e["fractions"]["unknown"]),
                    "-" if e["deepest_generation"] is None else e["deepest_generation"],
                    ", ".join(e["models"]) or "-",
                    "all held" if e["all_held"] else "VIOLATED",
                )
                for e in entries
            ],
        )
    )  # fmt: skip
    click.echo("")
    click.echo("constraints (achieved, bound, margin; by the policy's unit):")
    rows = []
    for e in entries:
        for c in e["constraints"]:
            achieved, margin = format_constraint(c)
            rows.append(
                (e["sequence"], c["name"], achieved, margin, "held" if c["held"] else "VIOLATED")
            )
    click.echo(render_table(["#", "constraint", "achieved", "margin", ""], rows))
