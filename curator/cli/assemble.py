"""Assembly commands: assemble, policy init|check, manifest list|show|verify."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from curator.cli import cli
from curator.cli.store import _open, store_option


@cli.command("assemble")
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The policy TOML file.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="New or empty directory for the training set.",
)
@click.option(
    "--lineage",
    help="Lineage of the manifest, whose earlier manifests count as used (default: the policy's "
    "freshness.lineage, else `default`; must agree with it when both are set).",
)
@click.option("--name", help="Name of the manifest (default: the policy's name).")
@click.option("--dry-run", is_flag=True, help="Print the plan and write nothing.")
@click.option(
    "--lock-timeout", type=click.FloatRange(0), help="Seconds to wait for another writer."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the manifest (or, with --dry-run, the plan) as JSON.",
)
@store_option
def assemble_command(
    policy_path: str,
    out: str,
    lineage: str | None,
    name: str | None,
    dry_run: bool,
    lock_timeout: float | None,
    as_json: bool,
    store_path: str | None,
) -> None:
    """Assemble a training set under a policy: Parquet shards plus manifest.json.

    Every constraint of the policy holds over the whole set and in every output shard, or the
    command fails before writing anything (unless the policy says on_shortfall = "shrink").
    The content used is recorded so that it is not fresh for later manifests of the lineage.

    \b
    Examples:
      curator policy init gen-2.toml
      curator assemble --policy gen-2.toml --out train/gen-2 --lineage main --dry-run
      curator assemble --policy gen-2.toml --out train/gen-2 --lineage main
    """
    from curator.assembly.policy import Policy

    store = _open(store_path)
    policy = Policy.from_toml(policy_path)
    if dry_run:
        assembly = store.plan(policy, lineage=lineage)
        if as_json:
            click.echo(json.dumps(assembly.plan.to_json(), indent=2))
        else:
            click.echo(assembly.describe())
            click.echo("(dry run: nothing written)")
        return
    manifest = store.assemble(policy, out, lineage=lineage, name=name, lock_timeout=lock_timeout)
    if as_json:
        click.echo(json.dumps(manifest.data, indent=2))
        return
    if manifest.note:
        click.echo(f"note: {manifest.note}")
    click.echo(_summary(manifest.data))


def _summary(data: dict[str, Any]) -> str:
    from curator.assembly.assemble import POOL_LABELS, format_constraint_line

    overall = data["composition"]["overall"]
    unit = data["plan"]["unit"]
    lines = [
        f"manifest {data['manifest_id']} ({data['lineage']} #{data['sequence']}): {overall['rows']:,} rows, {overall['units']:,} {unit} in {len(data['outputs'])} file(s) in {data['out_dir']}",
    ]
    if data["plan"]["shrunk"]:
        lines.append(f"  shrunk: target was {data['plan']['target']:,} {unit}")
    total = overall["units"] or 1
    for key, value in sorted(overall["by_freshness"].items()):
        lines.append(
            f"  {POOL_LABELS.get(key, key):<30} {value['units']:>14,} {unit}  {100 * value['units'] / total:5.1f}%"
        )
    lines += [format_constraint_line(item, width=6) for item in data["constraints"]]
    return "\n".join(lines)


def _breakdown(data: dict[str, Any]) -> str:
    """The set by pool (origin, real split by freshness) x generation x source, as a table."""
    from curator.assembly.assemble import POOL_LABELS
    from curator.core.output import render_table

    overall = data["composition"]["overall"]
    unit = data["plan"]["unit"]
    total = overall["units"] or 1
    if "cells" not in overall:  # a manifest written before the breakdown was recorded
        return "\n".join(
            f"{name.removeprefix('by_')}: "
            + ", ".join(f"{key} {value['units']:,} {unit}" for key, value in overall[name].items())
            for name in ("by_origin", "by_generation", "by_source")
        )
    rows: list[tuple[str, ...]] = [
        (
            POOL_LABELS[cell["pool"]],
            "-" if cell["generation"] is None else str(cell["generation"]),
            cell["source"],
            f"{cell['rows']:,}",
            f"{cell['units']:,}",
            f"{100 * cell['units'] / total:.1f}%",
        )
        for cell in overall["cells"]
    ]
    columns = ["origin", "generation", "source", "rows", unit, "share"]
    if unit == "rows":
        rows = [row[:4] + row[5:] for row in rows]
        columns = ["origin", "generation", "source", "rows", "share"]
    right = [False, True, False] + [True] * (len(columns) - 3)
    return render_table(columns, rows, right=right)


def format_constraint(item: dict[str, Any]) -> tuple[str, str]:
    """A manifest constraint as (achieved against its bound, margin) for a table: fractions in
    percent and percentage points, `max_generation` in generations, `min_origin_confidence` as
    a confidence."""
    kind = item.get("kind", "fraction")
    relation = item.get("relation") or (">=" if item["name"].startswith("min") else "<=")
    if kind == "generation":
        return f"{item['achieved']} {relation} {item['bound']}", f"{item['margin']:+d} gen"
    if kind == "confidence":
        return (
            f"{item['achieved']:.2f} {relation} {item['bound']:.2f}",
            f"{item['margin']:+.2f}",
        )
    return (
        f"{100 * item['achieved']:.1f}% {relation} {100 * item['bound']:.1f}%",
        f"{100 * item['margin']:+.1f} pt",
    )


@cli.group("policy")
def policy_group() -> None:
    """Write and check mixing policies.

    \b
    Example:
      curator policy init gen-2.toml && curator policy check gen-2.toml
    """


@policy_group.command("init")
@click.argument("path", default="policy.toml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@store_option
def policy_init(path: str, force: bool, store_path: str | None) -> None:
    """Write a commented example policy (default: ./policy.toml). With a store, its
    [[sources]] tables name the store's sources; without one, the source is a placeholder.

    \b
    Example:
      curator policy init gen-2.toml --store ./store
    """
    from curator.assembly.policy import example_policy
    from curator.core.errors import InputError

    if os.path.exists(path) and not force:
        raise InputError(
            f"`{path}` already exists", "pass --force to overwrite it, or another path"
        )
    sources = None
    if store_path:
        sources = [
            (row["source"], int(row["rows"]))
            for row in _open(store_path)
            .sql(
                "SELECT source, sum(rows) AS rows FROM shards WHERE live GROUP BY source ORDER BY source"
            )
            .to_pylist()
        ]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(example_policy(sources))
    click.echo(f"Wrote {path}")


@policy_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--lineage", help="Lineage to plan for (default: the policy's).")
@store_option
def policy_check(path: str, lineage: str | None, store_path: str | None) -> None:
    """Validate a policy and, with a store, explain what it would assemble.

    \b
    Example:
      curator policy check gen-2.toml --store ./store
    """
    from curator.assembly.planner import ShortfallError
    from curator.assembly.policy import Policy

    policy = Policy.from_toml(path)
    valid = f"{path}: valid policy (target {policy.target.amount:,} {policy.target.unit}, seed {policy.seed})"
    if store_path is None and not os.environ.get("CURATOR_STORE"):
        click.echo(valid)
        return
    # Against a store, a source it lacks makes the policy invalid: plan before saying "valid".
    try:
        assembly = _open(store_path).plan(policy, lineage=lineage)
    except ShortfallError:
        click.echo(valid)
        raise
    click.echo(valid)
    click.echo(assembly.describe())


@cli.group("manifest")
def manifest_group() -> None:
    """List, show and verify assembled training sets.

    \b
    Example:
      curator manifest list && curator manifest verify gen-2
    """


@manifest_group.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def manifest_list(store_path: str | None, as_json: bool) -> None:
    """Every manifest of the store, by lineage.

    \b
    Example:
      curator manifest list --store ./store
    """
    from curator.core.output import render_table, to_json

    rows = _open(store_path).manifests()
    if as_json:
        click.echo(to_json(rows))
        return
    click.echo(
        render_table(
            ["manifest", "name", "lineage", "#", "rows", "units", "unit", "out"],
            [
                (
                    r["manifest_id"],
                    r["name"],
                    r["lineage"],
                    r["sequence"],
                    r["rows"],
                    r["units"],
                    r["unit"],
                    r["out_dir"],
                )
                for r in rows
            ],
        )
    )


@manifest_group.command("show")
@click.argument("ident", metavar="MANIFEST")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest.json.")
def manifest_show(ident: str, store_path: str | None, as_json: bool) -> None:
    """Show a manifest (by id, name or path): the set by origin x generation x source, and
    its constraints.

    \b
    Example:
      curator manifest show gen-2 --json
    """
    from curator.assembly.manifest import Manifest

    manifest = Manifest.load(ident) if os.path.exists(ident) else _open(store_path).manifest(ident)
    if as_json:
        click.echo(json.dumps(manifest.data, indent=2))
        return
    click.echo(_summary(manifest.data))
    click.echo(_breakdown(manifest.data))


@manifest_group.command("verify")
@click.argument("ident", metavar="MANIFEST")
@store_option
def manifest_verify(ident: str, store_path: str | None) -> None:
    """Recompute the checksums of a manifest's output files; name any missing or changed.

    \b
    Example:
      curator manifest verify train/gen-2
    """
    from curator.assembly.manifest import Manifest
    from curator.core.errors import CuratorError

    manifest = Manifest.load(ident) if os.path.exists(ident) else _open(store_path).manifest(ident)
    problems = manifest.verify()
    if problems:
        for line in problems:
            click.echo(line)
        raise CuratorError(
            f"{len(problems)} of {len(manifest.outputs)} output files of manifest `{manifest.manifest_id}` are missing or changed",
            "re-assemble, or restore the files",
        )
    click.echo(
        f"ok: {len(manifest.outputs)} files of manifest {manifest.manifest_id} match their checksums"
    )
