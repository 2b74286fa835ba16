"""`curator infer` and `curator contamination`."""

from __future__ import annotations

import click

from curator.cli.app import cli
from curator.cli.options import (
    DateType,
    engine_for,
    engine_options,
    json_option,
    lock_timeout_option,
    open_store_at,
    store_option,
)


@cli.command("infer")
@store_option
@click.option(
    "--report",
    is_flag=True,
    help="Change nothing: list what would be relabelled and every conflict with a declared label.",
)
@click.option(
    "--cutoff",
    type=DateType(),
    show_default="2022-11-30",
    help="Time prior: content collected before this is likely real.",
)
@click.option(
    "--time-prior-confidence",
    type=click.FloatRange(0, 1),
    default=0.6,
    help="Confidence of a time-prior label.",
)
@click.option(
    "--detector",
    metavar="MODULE:FUNCTION",
    help="A callable taking a table (sample_id, content_hash, text/image) and returning a "
    "probability of being synthetic per row; applied to samples still unknown.",
)
@click.option(
    "--detector-threshold",
    type=click.FloatRange(0.5, 1, min_open=True),
    default=0.9,
    help="Scores at or above it label synthetic, at or below 1 − it label real.",
)
@click.option(
    "--c2pa-trust-anchors",
    metavar="PEM",
    envvar="CURATOR_C2PA_TRUST_ANCHORS",
    show_envvar=True,
    type=click.Path(dir_okay=False),
    help="PEM file of CA certificates whose C2PA signers are trusted. Without a trusted signer a C2PA claim of real counts as "
    "unsigned IPTC metadata; a claim of generated counts in full.",
)
@engine_options
@lock_timeout_option
@json_option("Print the result as JSON.")
def infer_command(
    store_path: str | None,
    report: bool,
    cutoff: object,
    time_prior_confidence: float,
    detector: str | None,
    detector_threshold: float,
    c2pa_trust_anchors: str | None,
    engine: str,
    ray_address: str | None,
    lock_timeout: float | None,
    as_json: bool,
) -> None:
    """Label samples of unknown origin, and check declared labels against what files say.

    Signals, strongest first: C2PA manifests (validated; needs `pip install 'curator[c2pa]'`),
    IPTC DigitalSourceType in XMP, generator metadata (Stable Diffusion WebUI, ComfyUI,
    InvokeAI, NovelAI, EXIF), a near-duplicate of a sample of known origin (run `curator dedup`
    first), the time prior, then the detector. A weaker signal never overrides a stronger one
    and declared labels are never changed: a contradiction is reported as a conflict.
    Relabelled samples get new shards, switched atomically, and every change is logged in the
    catalog table `label_events` (curator sql "SELECT * FROM label_events LIMIT 20").

    \b
    Examples:
      curator infer --report
      curator infer --cutoff 2022-11-30 --detector mydetect:score
      curator infer --c2pa-trust-anchors c2pa-trust-anchors.pem
    """
    from curator.core.output import render_table, to_json

    store = open_store_at(store_path)
    with engine_for(engine, ray_address) as runner:
        result = store.infer(
            cutoff=cutoff,
            time_prior_confidence=time_prior_confidence,
            detector=detector,
            detector_threshold=detector_threshold,
            apply=not report,
            lock_timeout=lock_timeout,
            c2pa_trust_anchors=c2pa_trust_anchors,
            engine=runner,
        )
    if as_json:
        click.echo(to_json(result.to_json()))
        return
    verb = "would relabel" if report else "relabelled"
    click.echo(
        f"infer {result.run_id}: {result.examined:,} samples examined; {verb} {result.relabelled:,}"
        + (
            " (" + ", ".join(f"{k}: {v:,}" for k, v in sorted(result.by_evidence.items())) + ")"
            if result.by_evidence
            else ""
        )
        + (
            f" in {result.shards_rewritten:,} new shard(s)"
            if result.applied and result.shards_rewritten
            else ""
        )
        + f"; {len(result.conflicts):,} conflict(s); {result.unreadable:,} unreadable image(s)"
        + (f"; {len(result.problems):,} file(s) with unusable metadata" if result.problems else "")
    )
    if result.problems:
        click.echo("files whose metadata says nothing (first 20; all in --json):")
        for problem in result.problems[:20]:
            click.echo(f"  {problem['sample_id']}: {problem['reason']}")
    if result.changes and report:
        click.echo(
            render_table(
                ["sample", "now", "would be", "evidence", "confidence", "reason"],
                [
                    (
                        c["sample_id"],
                        c["old"]["origin"],
                        c["new"]["origin"],
                        c["new"]["evidence"],
                        c["new"]["confidence"],
                        c["reason"],
                    )
                    for c in result.changes[:200]
                ],
            )
        )
    if result.conflicts:
        click.echo("conflicts (declared labels are kept; check these samples):")
        click.echo(
            render_table(
                ["sample", "declared", "signal says", "evidence", "reason"],
                [
                    (
                        c["sample_id"],
                        c["declared_origin"],
                        c["signal_origin"],
                        c["signal_evidence"],
                        c["reason"],
                    )
                    for c in result.conflicts[:200]
                ],
            )
        )


@cli.command("contamination")
@store_option
@click.option("--source", required=True, help="The source to examine.")
@json_option()
def contamination_command(source: str, store_path: str | None, as_json: bool) -> None:
    """How much of a source near-duplicates known synthetic samples (of other sources), by the
    generation and model of the synthetic copy. Run `curator dedup` first.

    \b
    Examples:
      curator contamination --source web-2024
      curator contamination --source web-2024 --json
    """
    from curator.core.output import render_table, to_json

    data = open_store_at(store_path).contamination(source)
    if as_json:
        click.echo(to_json(data))
        return
    if not data["dedup_has_run"]:
        click.echo("No near-duplicate clusters yet: run `curator dedup` first.")
    click.echo(
        f"source {source}: {data['contaminated']:,} of {data['samples']:,} samples "
        f"({100 * data['fraction']:.2f}%) near-duplicate known synthetic samples"
    )
    if data["by_generation_and_model"]:
        click.echo(
            render_table(
                ["generation", "model", "samples", "share"],
                [
                    (r["generation"], r["model"], r["samples"], f"{100 * r['fraction']:.2f}%")
                    for r in data["by_generation_and_model"]
                ],
            )
        )
