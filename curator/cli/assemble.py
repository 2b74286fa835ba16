"""Assembly commands: assemble, policy init|check, manifest list|show|verify."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from curator.cli.app import cli
from curator.cli.options import (
    engine_for,
    engine_options,
    json_option,
    lock_timeout_option,
    open_store_at,
    store_option,
)
from curator.cli.output import plural


@cli.command("assemble")
@store_option
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
    show_default="the policy's freshness.lineage, else `default`",
    help="Lineage of the manifest, whose earlier manifests count as used (must agree with the "
    "policy's freshness.lineage when both are set).",
)
@click.option("--name", show_default="the policy's name", help="Name of the manifest.")
@click.option("--dry-run", is_flag=True, help="Print the plan and write nothing.")
@engine_options
@lock_timeout_option
@json_option("Print the manifest (or, with --dry-run, the plan) as JSON.")
def assemble_command(
    store_path: str | None,
    policy_path: str,
    out: str,
    lineage: str | None,
    name: str | None,
    dry_run: bool,
    engine: str,
    ray_address: str | None,
    lock_timeout: float | None,
    as_json: bool,
) -> None:
    """Assemble a training set under a policy: Parquet shards plus manifest.json.

    Every constraint of the policy holds over the whole set and in every output shard, or the
    command fails before writing anything (unless the policy says on_shortfall = "shrink").
    The content used is recorded so that it is not fresh for later manifests of the lineage.
    `curator policy init` writes a policy to start from.

    \b
    Examples:
      curator assemble --policy gen-2.toml --out train/gen-2 --lineage main --dry-run
      curator assemble --policy gen-2.toml --out train/gen-2 --lineage main
    """
    from curator.assembly.policy import Policy

    store = open_store_at(store_path)
    policy = Policy.from_toml(policy_path)
    if dry_run:
        # Planning runs no tasks: no engine is made (a Ray engine would start Ray for nothing).
        assembly = store.plan(policy, lineage=lineage)
        if as_json:
            click.echo(json.dumps(assembly.plan.to_json(), indent=2))
        else:
            click.echo(assembly.describe())
            click.echo("(dry run: nothing written)")
        return
    with engine_for(engine, ray_address) as runner:
        manifest = store.assemble(
            policy, out, lineage=lineage, name=name, lock_timeout=lock_timeout, engine=runner
        )
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
    arrays = sum(len(output.get("arrays", ())) for output in data["outputs"])
    files = plural(len(data["outputs"]), "shard") + (
        f" (+{plural(arrays, 'token array')})" if arrays else ""
    )
    lines = [
        f"manifest {data['manifest_id']} ({data['lineage']} #{data['sequence']}): {overall['rows']:,} rows, {overall['units']:,} {unit} in {files} in {data['out_dir']}",
    ]
    if data["plan"]["shrunk"]:
        lines.append(f"  shrunk: target was {data['plan']['target']:,} {unit}")
    total = overall["units"] or 1
    order = list(POOL_LABELS)  # fresh real, used real, …: the pools in the policy's order
    by_freshness = overall["by_freshness"]
    for key, value in sorted(
        by_freshness.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0])
    ):
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


@cli.group("policy")
def policy_group() -> None:
    """Write and check mixing policies.

    \b
    Examples:
      curator policy init gen-2.toml && curator policy check gen-2.toml
    """


@policy_group.command("init")
@click.argument("path", default="policy.toml", type=click.Path(dir_okay=False))
@store_option
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def policy_init(path: str, store_path: str | None, force: bool) -> None:
    """Write a commented example policy (default: ./policy.toml). With a store, its
    [[sources]] tables name the store's sources; without one, the source is a placeholder.

    \b
    Examples:
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
            for row in open_store_at(store_path)
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
@store_option
@click.option("--lineage", show_default="the policy's", help="Lineage to plan for.")
def policy_check(path: str, store_path: str | None, lineage: str | None) -> None:
    """Validate a policy and, with a store, explain what it would assemble.

    \b
    Examples:
      curator policy check gen-2.toml --store ./store
    """
    from curator.assembly.planner import ShortfallError
    from curator.assembly.policy import Policy, PolicyError
    from curator.assembly.tokens import token_output

    policy = Policy.from_toml(path)
    try:
        token_output(policy)  # a token output's tokenizer and separator must be usable
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc.message}", exc.hint) from None
    valid = f"{path}: valid policy (target {policy.target.amount:,} {policy.target.unit}, seed {policy.seed})"
    if store_path is None and not os.environ.get("CURATOR_STORE"):
        click.echo(valid)
        return
    # Against a store, a source it lacks makes the policy invalid: plan before saying "valid".
    try:
        assembly = open_store_at(store_path).plan(policy, lineage=lineage)
    except ShortfallError:
        click.echo(f"{valid}; this store cannot meet it:")
        raise
    click.echo(valid)
    click.echo(assembly.describe())


@cli.group("manifest")
def manifest_group() -> None:
    """List, show and verify assembled training sets.

    \b
    Examples:
      curator manifest list && curator manifest verify gen-2
    """


@manifest_group.command("list")
@store_option
@json_option()
def manifest_list(store_path: str | None, as_json: bool) -> None:
    """Every manifest of the store, by lineage.

    \b
    Examples:
      curator manifest list --store ./store
    """
    from curator.core.output import render_table, to_json

    rows = open_store_at(store_path).manifests()
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
@json_option("Print the whole manifest.json.")
def manifest_show(ident: str, store_path: str | None, as_json: bool) -> None:
    """Show a manifest (by id, name or path): the set by origin x generation x source, and
    its constraints.

    \b
    Examples:
      curator manifest show gen-2 --json
    """
    manifest = _manifest_named(ident, store_path)
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
    Examples:
      curator manifest verify train/gen-2
      curator manifest verify s3://bucket/sets/gen-2
    """
    from curator.core.errors import CuratorError

    manifest = _manifest_named(ident, store_path)
    problems = manifest.verify()
    if problems:
        for line in problems:
            click.echo(line)
        raise CuratorError(
            f"{len(problems):,} of {len(manifest.files()):,} output files of manifest `{manifest.manifest_id}` are missing or changed",
            "re-assemble, or restore the files",
        )
    click.echo(
        f"ok: {len(manifest.files()):,} files of manifest {manifest.manifest_id} match their checksums"
    )


def _manifest_named(ident: str, store_path: str | None) -> Any:
    """The manifest `ident` names: a set's directory, manifest.json or URL, or with a store
    (--store, CURATOR_STORE) an id or name; a path that does not exist is named as such."""
    from curator.export.target import resolve_manifest

    return resolve_manifest(ident, open_store_at(store_path) if store_path else None)
