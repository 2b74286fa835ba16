"""Assembly: select samples from the store under a policy and write a training set.

1. Candidates (DuckDB, out of core): every live sample with its category — fresh real, used real,
   synthetic or unknown (a label below `min_origin_confidence` counts as unknown) — its size in
   the policy's unit, and its rank: md5 of the seed, the number of earlier manifests that count
   as used (so later sets of a lineage do not take the same used-real, synthetic and unknown rows
   again; :func:`_rank_salt`) and its `content_hash`, so the selection depends only on the
   content, the seed and the store's manifests (invariant 5). Exact duplicates collapse to the most
   trustworthy copy; synthetic samples deeper than `max_generation` are left out.
2. The plan (:mod:`curator.assembly.planner`): exact amounts per (category, source, generation).
3. Selection: in each cell, the first samples by rank until the cell's amount is reached (with
   bytes or tokens, whether each cell keeps the sample that crosses its amount is settled across
   cells, so that the set meets every fraction within one sample).
4. Order and shards: with a rows target, shards have `shard_rows` rows and how many of each
   category (and capped source) each holds comes from a small integer program, so every shard
   meets every fraction within one row; with bytes or tokens, shards are cut by units
   (:func:`unit_shard_cuts`), so every shard meets every fraction within the largest sample, in
   that unit. Inside a shard the pools are interleaved. Every constraint is checked over the set
   and in every shard before anything is written (invariant 4).
5. Output: Parquet (or JSON Lines) shards and `manifest.json`, written under a temporary name and
   renamed. The wide rows are never sorted whole: they are read in storage order, spilled per
   output shard, and each shard is ordered on its own. The usage ledger is committed in the same
   catalog transaction as the manifest, before the files are moved into place; a run killed at
   any point is finished by running the same command again (:func:`assemble`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curator.assembly.manifest import MANIFEST_FILE, MANIFEST_VERSION, Manifest, validate_manifest
from curator.assembly.planner import CATEGORIES, Cell, Plan, Pool, plan
from curator.assembly.policy import Policy, PolicyError, check_sources
from curator.core.errors import CuratorError, InputError
from curator.core.version import __version__
from curator.store.catalog import store_path

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from curator.store.base import StoreBase as Store

DEFAULT_LINEAGE = "default"
DUCKDB_MEMORY_LIMIT = "1GB"
#: While the output is written, DuckDB streams the chosen rows and two shards are compressed here.
DUCKDB_WRITE_MEMORY_LIMIT = "512MB"
#: Rows per batch of the read that feeds the spill files: small batches stay in cache (8192 read
#: and routed 1.4x faster than 131072 in bench/assemble.py).
_READ_BATCH_ROWS = 8192
#: The output position carried through the spill files (dropped before writing).
_POSITION = "__curator_out_pos"
TRUST_ORDER = "CASE origin WHEN 'real' THEN 0 WHEN 'synthetic' THEN 1 ELSE 2 END, generation NULLS LAST, origin_confidence DESC, collected_at NULLS LAST, sample_id"


class AssemblyError(CuratorError):
    """An assembly that would break a constraint of its policy; nothing was written."""


@dataclass
class Assembly:
    """A planned assembly: the plan, and the DuckDB session holding its candidates."""

    policy: Policy
    lineage: str
    plan: Plan
    used_manifests: list[str]
    snapshot: list[dict[str, Any]]
    candidates: int

    def describe(self) -> str:
        """The plan as text: the amounts per pool, what was available, and the constraints."""
        from curator.core.output import render_table

        p = self.plan
        rows = []
        for cell in sorted(set(p.amounts) | set(p.available), key=Cell.key):
            pool = p.available.get(cell, Pool(0, 0))
            planned = p.amounts.get(cell, 0)
            rows.append(
                (
                    POOL_LABELS[cell.category],
                    "0"
                    if cell.category in ("fresh_real", "used_real")
                    else "-"
                    if cell.generation is None
                    else str(cell.generation),
                    cell.source,
                    f"{pool.units:,}",
                    f"{planned:,}",
                    f"{100 * planned / p.total:.1f}%" if p.total else "-",
                )
            )
        unit = p.unit
        lines = [
            f"lineage {self.lineage}: {len(self.used_manifests)} earlier manifest(s) count as used; {self.candidates:,} candidate samples",
            f"target {p.target:,} {unit}; planned {p.total:,} {unit}"
            + (" (shrunk)" if p.shrunk else ""),
            render_table(
                ["pool", "generation", "source", f"available {unit}", f"planned {unit}", "share"],
                rows,
                right=[False, True, False, True, True, True],
            ),
        ]
        lines += [f"note: {note}" for note in p.notes]
        lines.append("constraints:")
        deepest = max(
            (
                cell.generation or 0
                for cell, amount in p.amounts.items()
                if amount and cell.category != "unknown"
            ),
            default=0,
        )
        # The lowest confidence among the candidates of the planned pools: the chosen samples'
        # lowest is at least this (and every one counted as real or synthetic meets the floor).
        lowest = min(
            (
                pool.lowest_confidence
                for cell, pool in p.available.items()
                if p.amounts.get(cell) and cell.category != "unknown"
                if pool.lowest_confidence is not None
            ),
            default=1.0,
        )
        for item in constraint_report(
            self.policy,
            _plan_amounts(p),
            p.total,
            deepest_generation=deepest,
            lowest_confidence=lowest,
        ):
            lines.append(format_constraint_line(item))
        return "\n".join(lines)


#: How pools (categories) are named in printed output.
POOL_LABELS = {
    "fresh_real": "fresh real",
    "used_real": "used real",
    "synthetic": "synthetic",
    "unknown": "unknown",
    "not_real": "not real (synthetic + unknown)",
}


def format_constraint_line(item: dict[str, Any], width: int = 8) -> str:
    """One constraint of a report as an aligned line: name, bound, what was achieved, ok."""
    relation = item.get("relation") or (">=" if item["name"].startswith("min") else "<=")
    achieved = (
        f"{item['achieved']}" if item.get("kind") == "generation" else f"{item['achieved']:.4f}"
    )
    return (
        f"  {item['name']:<28} {relation} {item['bound']:<{width}g} achieved {achieved}  "
        f"{'ok' if item['held'] else 'VIOLATED'}"
    )


def _plan_amounts(p: Plan) -> dict[str, int]:
    amounts: dict[str, int] = {cat: p.category_amount(cat) for cat in CATEGORIES}
    for cell, value in p.amounts.items():
        amounts[f"source:{cell.source}"] = amounts.get(f"source:{cell.source}", 0) + value
    return amounts


def constraint_report(
    policy: Policy,
    amounts: dict[str, int],
    total: int,
    tolerance: int = 0,
    *,
    deepest_generation: int | None = None,
    lowest_confidence: float | None = None,
) -> list[dict[str, Any]]:
    """Each constraint with its bound, what was achieved, whether it held and the margin.

    The fractions (`kind` ``fraction``) are of `total`, in the policy's unit, from `amounts` (by
    category and by ``source:NAME``); `tolerance` (in that unit) is the size of the largest
    sample: whole samples can miss a share by less than one sample. `max_generation` (`kind`
    ``generation``) compares `deepest_generation`, the deepest generation among the samples
    counted as real or synthetic (0 when there are none), with the bound; `min_origin_confidence`
    (`kind` ``confidence``) compares `lowest_confidence`, the lowest confidence among the samples
    counted as real or synthetic (1.0 when there are none), with the bound. Each of the two is
    reported when the policy sets it (`min_origin_confidence` above 0) and its measure is given.
    The margin is how far inside the bound the set is (negative: outside)."""
    c = policy.constraints
    report = []

    def add(name: str, relation: str, bound: float, achieved_units: int) -> None:
        achieved = achieved_units / total if total else 0.0
        margin = achieved - bound if relation == ">=" else bound - achieved
        held = total == 0 or margin * total >= -tolerance - 1e-9 * max(1, total)
        entry = {
            "name": name,
            "kind": "fraction",
            "relation": relation,
            "bound": bound,
            "achieved": achieved,
            "held": held,
            "margin": margin,
        }
        if tolerance:
            entry["tolerance_units"] = tolerance
        report.append(entry)

    add("min_fresh_real_fraction", ">=", c.min_fresh_real_fraction, amounts.get("fresh_real", 0))
    add(
        "min_real_fraction",
        ">=",
        c.min_real_fraction,
        amounts.get("fresh_real", 0) + amounts.get("used_real", 0),
    )
    add("max_synthetic_fraction", "<=", c.max_synthetic_fraction, amounts.get("synthetic", 0))
    add("max_unknown_fraction", "<=", c.max_unknown_fraction, amounts.get("unknown", 0))
    for rule in policy.sources:
        if rule.max_fraction < 1:
            add(
                f"sources.{rule.name}.max_fraction",
                "<=",
                rule.max_fraction,
                amounts.get(f"source:{rule.name}", 0),
            )
    if c.max_generation is not None and deepest_generation is not None:
        report.append(
            {
                "name": "max_generation",
                "kind": "generation",
                "relation": "<=",
                "bound": c.max_generation,
                "achieved": deepest_generation,
                "held": deepest_generation <= c.max_generation,
                "margin": c.max_generation - deepest_generation,
            }
        )
    if c.min_origin_confidence > 0 and lowest_confidence is not None:
        report.append(
            {
                "name": "min_origin_confidence",
                "kind": "confidence",
                "relation": ">=",
                "bound": c.min_origin_confidence,
                "achieved": lowest_confidence,
                "held": lowest_confidence >= c.min_origin_confidence,
                "margin": lowest_confidence - c.min_origin_confidence,
            }
        )
    return report


class _Session:
    """An in-memory DuckDB session with the catalog attached read-only."""

    def __init__(self, store: Store, temp_dir: str) -> None:
        import duckdb

        self.store = store
        self.con: duckdb.DuckDBPyConnection = duckdb.connect(
            config={"memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": temp_dir}
        )
        root = store.root.replace("'", "''")
        self.con.execute(f"SET file_search_path = '{root}'")
        self.con.execute("SET enable_progress_bar = false")  # DuckDB's bar writes to stdout
        deadline = time.monotonic() + 60
        while True:
            try:
                self.con.execute(
                    f"ATTACH '{store.catalog_path.replace(chr(39), chr(39) * 2)}' AS cat (READ_ONLY)"
                )
                break
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def detach(self) -> None:
        self.con.execute("DETACH cat")

    def close(self) -> None:
        self.con.close()


def _used_manifests(
    con: duckdb.DuckDBPyConnection, policy: Policy, lineage: str | None
) -> list[str]:
    """The earlier manifests whose content counts as used: the policy's explicit list (ids or
    names); else those of `lineage` (the assembly's, which :func:`resolve_lineage` has made
    agree with the policy's `freshness.lineage`); with no lineage at all, every manifest in the
    store (DESIGN.md's default)."""
    fresh = policy.freshness
    if fresh.manifests is not None:
        return resolve_manifests(con, fresh.manifests)
    if lineage is None:
        query, params = "SELECT manifest_id FROM cat.manifests ORDER BY created_at, manifest_id", []
    else:
        query, params = (
            "SELECT manifest_id FROM cat.manifests WHERE lineage = ? ORDER BY sequence",
            [lineage],
        )
    return [row[0] for row in con.execute(query, params).fetchall()]


def resolve_manifests(con: duckdb.DuckDBPyConnection, idents: tuple[str, ...]) -> list[str]:
    """The manifest ids `freshness.manifests` names, sorted: each entry is a manifest id or a
    manifest name. A name resolves as :func:`find_manifest` resolves it, to the latest manifest
    of that name (the highest sequence); a name used in more than one lineage is ambiguous.

    Raises:
        PolicyError: an entry names no manifest of the store, or a name is ambiguous (the
            message lists the candidates).
    """
    rows = con.execute("SELECT manifest_id, name, lineage, sequence FROM cat.manifests").fetchall()
    ids = {row[0] for row in rows}
    resolved = set()
    for ident in idents:
        if ident in ids:
            resolved.add(ident)
            continue
        named = sorted((r for r in rows if r[1] == ident), key=lambda r: (r[2], r[3], r[0]))
        if not named:
            raise PolicyError(
                f"`freshness.manifests` names `{ident}`, which is neither the id nor the name of a manifest of this store",
                "list them with `curator manifest list`",
            )
        if len({r[2] for r in named}) > 1:
            listed = "; ".join(f"{r[0]} (lineage {r[2]} #{r[3]})" for r in named)
            raise PolicyError(
                f"`freshness.manifests` names `{ident}`, which matches {len(named)} manifests: {listed}",
                "give the manifest ids instead",
            )
        resolved.add(named[-1][0])
    return sorted(resolved)


def resolve_lineage(policy: Policy, lineage: str | None) -> str | None:
    """The lineage of an assembly: the one given (``--lineage``, ``lineage=``) or the policy's
    `freshness.lineage`, whichever is set; it is both the lineage the manifest is recorded in and
    the one whose earlier manifests count as used. ``None`` when neither is set.

    Raises:
        PolicyError: both are set and differ (the manifest would be recorded in one lineage while
            freshness is judged by the other, and content would be reused as fresh).
    """
    declared = policy.freshness.lineage
    if lineage and declared and lineage != declared:
        raise PolicyError(
            f'`--lineage {lineage}` differs from the policy\'s `freshness.lineage = "{declared}"`: '
            "the manifest would be recorded in one lineage while what is fresh is judged by the other",
            f"drop one of them, or make them agree (`--lineage {declared}`, or "
            f'`freshness.lineage = "{lineage}"`)',
        )
    return lineage or declared


def prepare(store: Store, policy: Policy, lineage: str | None, session: _Session) -> Assembly:
    """Build the candidate table and plan the assembly."""
    con = session.con
    given_lineage = resolve_lineage(policy, lineage)
    lineage = given_lineage or DEFAULT_LINEAGE
    if policy.dedup.near:
        has_clusters = (
            con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'cat' AND table_name = 'duplicates'"
            ).fetchall()[0][0]
            and con.execute(
                "SELECT count(*) FROM cat.meta WHERE key = 'last_dedup_run'"
            ).fetchall()[0][0]
        )
        if not has_clusters:
            raise PolicyError(
                "`dedup.near = true` needs near-duplicate clusters, and `curator dedup` has not run on this store",
                "run `curator dedup` first, or set `near = false` (exact duplicates are still removed)",
            )
    snapshot = [
        dict(zip(("path", "rows", "sha256"), row, strict=True))
        for row in con.execute(
            "SELECT path, rows, sha256 FROM cat.shards WHERE live ORDER BY path"
        ).fetchall()
    ]
    check_sources(
        policy,
        [
            row[0]
            for row in con.execute("SELECT DISTINCT source FROM cat.shards WHERE live").fetchall()
        ],
    )
    used = _used_manifests(con, policy, given_lineage)
    c = policy.constraints
    if used:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE used AS SELECT DISTINCT content_hash FROM cat.usage WHERE manifest_id IN (SELECT unnest(?::VARCHAR[]))",
            [used],
        )
    else:  # nothing used yet: no need to scan the ledger
        con.execute("CREATE OR REPLACE TEMP TABLE used (content_hash VARCHAR)")
    paths = [store_path(store.root, s["path"]) for s in snapshot]
    # Only a confidence floor needs each chosen sample's confidence (for the manifest's report).
    confidence_column = " origin_confidence," if c.min_origin_confidence > 0 else ""
    if not paths:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE pool AS SELECT NULL::VARCHAR AS sample_id, NULL::VARCHAR AS content_hash, NULL::VARCHAR AS category, NULL::VARCHAR AS origin, NULL::SMALLINT AS generation, NULL::VARCHAR AS model, NULL::VARCHAR AS source, NULL::BIGINT AS shard, NULL::BIGINT AS row, NULL::BIGINT AS size,"
            f"{' NULL::DOUBLE AS origin_confidence,' if confidence_column else ''} NULL::UHUGEINT AS rank WHERE false"
        )
    else:
        columns = {
            row[0]
            for row in con.execute(
                "DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)", [paths]
            ).fetchall()
        }
        unit = policy.target.unit
        if unit == "rows":
            size = "1"
        elif unit == "bytes":
            parts = []
            if "text" in columns:
                parts.append("strlen(text)")
            if "image" in columns:
                parts.append("octet_length(image)")
            size = f"coalesce({', '.join(parts)}, 0)" if parts else "0"
        else:
            token_column = policy.target.token_column or ""
            if token_column not in columns:
                raise PolicyError(
                    f"`target.token_column` {token_column!r} is not a column of the store",
                    "ingest samples with a token-count column, or use `rows` or `bytes`",
                )
            size = f'greatest(coalesce(TRY_CAST("{token_column}" AS BIGINT), 0), 0)'
        fresh_after = policy.freshness.fresh_after
        fresh_clause = (
            "TRUE"
            if fresh_after is None
            else "(collected_at IS NOT NULL AND collected_at >= $fresh_after::TIMESTAMPTZ)"
        )
        params: dict[str, Any] = {"paths": paths, "confidence": c.min_origin_confidence}
        if fresh_after is not None:
            params["fresh_after"] = fresh_after
        max_generation = (
            "TRUE"
            if c.max_generation is None
            else f"NOT (category = 'synthetic' AND generation > {int(c.max_generation)})"
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE raw AS
            SELECT sample_id, content_hash, origin, generation, model, origin_confidence, collected_at, source,
                   file_index AS shard, file_row_number AS row, {size}::BIGINT AS size
            FROM read_parquet($paths, file_row_number = true, union_by_name = true)
            """,
            {"paths": paths},
        )
        if policy.dedup.exact:
            # Only contents with more than one copy need the (costly) ranking of their copies.
            con.execute(
                "CREATE OR REPLACE TEMP TABLE repeated AS SELECT content_hash FROM raw GROUP BY 1 HAVING count(*) > 1"
            )
            con.execute(
                f"""
                CREATE OR REPLACE TEMP VIEW kept_exact AS
                SELECT * FROM raw ANTI JOIN repeated USING (content_hash)
                UNION ALL
                SELECT * FROM (
                    SELECT * FROM raw SEMI JOIN repeated USING (content_hash)
                    QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY {TRUST_ORDER}) = 1
                )
                """
            )
        else:
            con.execute("CREATE OR REPLACE TEMP VIEW kept_exact AS SELECT * FROM raw")
        if not policy.dedup.near:
            con.execute("CREATE OR REPLACE TEMP VIEW kept AS SELECT * FROM kept_exact")
        else:
            # One sample per near-duplicate cluster, the most trustworthy by the labels as they
            # are now (`infer` may have relabelled members since `curator dedup` ran). Samples
            # ingested after that run are in no cluster yet.
            con.execute(
                f"""
                CREATE OR REPLACE TEMP VIEW kept AS SELECT * FROM kept_exact ANTI JOIN (
                    SELECT sample_id FROM (
                        SELECT r.sample_id, row_number() OVER (
                            PARTITION BY d.cluster_id ORDER BY {TRUST_ORDER}
                        ) AS place
                        FROM cat.duplicates d JOIN raw r USING (sample_id)
                    ) WHERE place > 1
                ) USING (sample_id)
                """
            )
        params.pop("paths")
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE pool AS
            SELECT * FROM (
                SELECT sample_id, content_hash, origin, generation, model, source, shard, row, size,{confidence_column}
                       CASE WHEN origin_confidence < $confidence THEN 'unknown'
                            WHEN origin = 'real' AND content_hash NOT IN (SELECT content_hash FROM used) AND {fresh_clause} THEN 'fresh_real'
                            WHEN origin = 'real' THEN 'used_real'
                            WHEN origin = 'synthetic' THEN 'synthetic'
                            ELSE 'unknown' END AS category,
                       md5_number('{_rank_salt(policy.seed, len(used))}' || content_hash) AS rank
                FROM kept
            ) WHERE {max_generation}
            """,
            params,
        )
        con.execute("DROP VIEW kept")
        con.execute("DROP VIEW kept_exact")
        if policy.dedup.exact:
            con.execute("DROP TABLE repeated")
        con.execute("DROP TABLE raw")
    available: dict[Cell, Pool] = {}
    least = "min(origin_confidence)" if confidence_column else "NULL::DOUBLE"
    for category, source, generation, rows, units, lowest in con.execute(
        "SELECT category, source, CASE WHEN category = 'synthetic' THEN generation END AS g, count(*), sum(size), "
        f"{least} FROM pool GROUP BY category, source, g ORDER BY ALL"
    ).fetchall():
        available[Cell(category, source, None if generation is None else int(generation))] = Pool(
            int(rows), int(units or 0), None if lowest is None else float(lowest)
        )
    candidates = sum(p.rows for p in available.values())
    result = plan(policy, available)
    return Assembly(
        policy=policy,
        lineage=lineage,
        plan=result,
        used_manifests=used,
        snapshot=snapshot,
        candidates=candidates,
    )


def _rank_salt(seed: int, earlier: int) -> str:
    """What the content hash is ranked with: the seed, and the number of earlier manifests that
    count as used. Without the count, every set of a lineage would take the same used-real,
    synthetic and unknown rows (the first by rank); with it, each set draws them afresh, and the
    same store, policy and seed still give the same selection (the count is part of the store's
    state). The first set of a lineage ranks by the seed alone."""
    return f"{int(seed)}:" if earlier == 0 else f"{int(seed)}:{earlier}:"


def _select(con: duckdb.DuckDBPyConnection, assembly: Assembly) -> list[int]:
    """Table `chosen`: the selected rows with their output position (`out_pos`) and output
    shard (`out_shard`). Returns each output shard's first position."""
    # Ranks are md5 values, uniform over [0, 2**128): a cell needing a fraction f of its units
    # finds them, with overwhelming probability, among the ranks below (f + 8 standard
    # deviations) · 2**128. Only those rows are sorted; a cell whose cut falls short (never seen,
    # but possible) is taken whole (threshold 2**128).
    cells = []
    for cell, amount in assembly.plan.amounts.items():
        pool = assembly.plan.available[cell]
        fraction = amount / pool.units if pool.units else 1.0
        spread = 8 * math.sqrt(max(fraction * (1 - fraction), 0.0) / max(pool.rows, 1)) + 16 / max(
            pool.rows, 1
        )
        cut = min(1.0, fraction + spread)
        threshold = 2**128 - 1 if cut >= 1.0 else int(cut * 2**128)
        cells.append(
            (
                cell.category,
                cell.source,
                -1 if cell.generation is None else cell.generation,
                amount,
                str(threshold),
            )
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE planned (category VARCHAR, source VARCHAR, g INTEGER, amount BIGINT, threshold UHUGEINT)"
    )
    if cells:
        con.executemany("INSERT INTO planned VALUES (?, ?, ?, ?, ?::UHUGEINT)", cells)
    shortfall = con.execute(
        """
        SELECT p.category, p.source, p.g FROM planned p
        LEFT JOIN (
            SELECT category, source, CASE WHEN category = 'synthetic' THEN generation ELSE -1 END AS g, rank, size FROM pool
        ) c ON c.category = p.category AND c.source = p.source AND c.g = p.g AND c.rank <= p.threshold
        GROUP BY p.category, p.source, p.g, p.amount HAVING coalesce(sum(c.size), 0) < p.amount
        """
    ).fetchall()
    for category, source, g in shortfall:
        con.execute(
            "UPDATE planned SET threshold = ?::UHUGEINT WHERE category = ? AND source = ? AND g = ?",
            [str(2**128 - 1), category, source, g],
        )
    order = " ".join(f"WHEN '{cat}' THEN {i}" for i, cat in enumerate(CATEGORIES))
    # Each cell's first rows by rank until its amount is reached (a prefix of the rank order, so
    # `n_in_cell` also numbers the picked rows); `cum` places each row within its cell.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE picked AS
        WITH ranked AS (
            SELECT c.*, sum(c.size) OVER w AS cum, row_number() OVER w AS n_in_cell, planned.amount
            FROM (
                SELECT *, CASE WHEN category = 'synthetic' THEN generation ELSE -1 END AS g FROM pool
            ) c JOIN planned USING (category, source, g)
            WHERE c.rank <= planned.threshold
            WINDOW w AS (PARTITION BY c.category, c.source, c.g ORDER BY c.rank, c.sample_id ROWS UNBOUNDED PRECEDING)
        )
        SELECT * EXCLUDE (amount) FROM ranked WHERE cum - size < amount OR (size = 0 AND cum <= amount)
        """
    )
    con.execute("DROP TABLE pool")  # give the candidates' memory to what follows
    if assembly.policy.target.unit != "rows":
        _settle_last_samples(con, assembly)
        return _order_by_units(con, assembly, order)
    cell_totals = con.execute(
        "SELECT category, source, g, count(*), sum(size) FROM picked GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    # Rows per shard: by (category, source) cell when the shards' source caps can be met too,
    # else by category (sources then follow their spread within each category).
    per_source: dict[tuple[str, str], int] = {}
    for category, source, _g, n, _units in cell_totals:
        per_source[(str(category), str(source))] = per_source.get((category, source), 0) + int(n)
    shard_rows = assembly.policy.output.shard_rows
    capped = {rule.name for rule in assembly.policy.sources if rule.max_fraction < 1}
    quota_cells = [(c, src, n) for (c, src), n in sorted(per_source.items())]
    per_cell = cell_quotas(quota_cells, shard_rows, capped) if capped else None
    rows: list[tuple[str, str | None, int, int, int]] = []

    def ranges(labels: list[tuple[str, str | None]], quotas: list[list[int]]) -> None:
        """Quota rows: the positions [lo, hi) of each label's rows that go to each shard."""
        for j, (category, source) in enumerate(labels):
            low = 0
            for shard_no, quota in enumerate(quotas):
                if quota[j]:
                    rows.append((category, source, shard_no, low, low + quota[j]))
                low += quota[j]

    if per_cell is not None:
        quotas = per_cell
        ranges([(category, source) for category, source, _n in quota_cells], quotas)
        key, partition, tie = (
            "p.category = q.category AND p.source = q.source",
            "category, source",
            "g",
        )
    else:
        counts: dict[str, int] = {}
        for category, _source, n in quota_cells:
            counts[category] = counts.get(category, 0) + n
        quotas = shard_quotas([counts.get(cat, 0) for cat in CATEGORIES], shard_rows)
        ranges([(category, None) for category in CATEGORIES], quotas)
        key, partition, tie = "p.category = q.category", "category", "source, g"
    # `m`: the row's place in the interleaved order of its category (or cell): cells spread
    # evenly by their rows' positions within the cell.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE picked_rows AS
        SELECT p.* EXCLUDE (cum, n_in_cell),
               row_number() OVER (
                   PARTITION BY {partition}
                   ORDER BY coalesce((p.cum - p.size / 2.0) / nullif(t.units, 0), p.n_in_cell), {tie}, rank, sample_id
               ) - 1 AS m
        FROM picked p JOIN (
            SELECT category, source, g, sum(size) AS units FROM picked GROUP BY ALL
        ) t USING (category, source, g)
        """
    )
    con.execute("DROP TABLE picked")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE quota (category VARCHAR, source VARCHAR, shard_no BIGINT, lo BIGINT, hi BIGINT, base BIGINT)"
    )
    # Each shard's first output position: shards are filled in order.
    bases = [0]
    for quota in quotas:
        bases.append(bases[-1] + sum(quota))
    if rows:
        con.executemany(
            "INSERT INTO quota VALUES (?, ?, ?, ?, ?, ?)",
            [(*row, bases[row[2]]) for row in rows],
        )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE chosen AS
        SELECT p.* EXCLUDE (m, g),
               q.base + row_number() OVER (
                   PARTITION BY q.shard_no
                   ORDER BY (p.m - q.lo + 0.5) / (q.hi - q.lo), CASE p.category {order} END, p.rank, p.sample_id
               ) - 1 AS out_pos,
               q.shard_no AS out_shard
        FROM picked_rows p JOIN quota q ON {key} AND p.m >= q.lo AND p.m < q.hi
        """
    )
    con.execute("DROP TABLE picked_rows")
    return bases[:-1]


#: Up to this many two-way choices are tried exhaustively; beyond it, one flip at a time.
_EXHAUSTIVE_CHOICES = 8


@dataclass(frozen=True)
class _Groups:
    """The policy's fraction constraints as rows over a list of pools: `members[j, c]` is 1 when
    pool c counts towards constraint j, `floor[j]` whether it is a floor (else a cap), `bound[j]`
    its fraction. Constraints that cannot bind (a floor of 0, a cap of 1) are left out."""

    names: list[str]
    members: Any  # numpy (constraints × pools)
    floor: Any  # numpy bool (constraints)
    bound: Any  # numpy float (constraints)

    @classmethod
    def of(cls, policy: Policy, pools: list[tuple[str, str]]) -> _Groups:
        import numpy as np

        c = policy.constraints
        specs: list[tuple[str, bool, float, set[str] | None, str | None]] = [
            ("min_fresh_real_fraction", True, c.min_fresh_real_fraction, {"fresh_real"}, None),
            ("min_real_fraction", True, c.min_real_fraction, {"fresh_real", "used_real"}, None),
            ("max_synthetic_fraction", False, c.max_synthetic_fraction, {"synthetic"}, None),
            ("max_unknown_fraction", False, c.max_unknown_fraction, {"unknown"}, None),
        ]
        specs += [
            (f"sources.{rule.name}.max_fraction", False, rule.max_fraction, None, rule.name)
            for rule in policy.sources
        ]
        names, rows, floors, bounds = [], [], [], []
        for name, is_floor, bound, categories, source in specs:
            if (is_floor and bound <= 0) or (not is_floor and bound >= 1):
                continue
            names.append(name)
            rows.append(
                [
                    (category in categories) if categories is not None else (pool_source == source)
                    for category, pool_source in pools
                ]
            )
            floors.append(is_floor)
            bounds.append(bound)
        return cls(
            names,
            np.array(rows, dtype=float).reshape(len(names), len(pools)),
            np.array(floors, dtype=bool),
            np.array(bounds, dtype=float),
        )

    def excess(self, units: Any) -> Any:
        """How far each composition (rows of `units`, per pool) is outside each bound, in units
        (negative: inside): ``bound · total − group`` for floors, ``group − bound · total`` for
        caps. Shape: compositions × constraints."""
        import numpy as np

        group = units @ self.members.T
        total = units.sum(axis=1, keepdims=True)
        return np.where(self.floor, self.bound * total - group, group - self.bound * total)


def _best_choice(low: Any, high: Any, score: Callable[[Any], Any], start: Any) -> Any:
    """Of the vectors taking, in each place, `low` or `high` (numpy arrays), the one whose score
    (a function of a matrix of candidate vectors, returning one row of keys per candidate,
    compared in order) is least: every combination when few places differ, else single flips
    from `start` for as long as they improve it. Deterministic: ties go to the earlier candidate."""
    import numpy as np

    free = np.flatnonzero(low != high)
    if len(free) <= _EXHAUSTIVE_CHOICES:
        bits = (np.arange(2 ** len(free))[:, None] >> np.arange(len(free))) & 1
        candidates = np.repeat(low[None, :], len(bits), axis=0)
        candidates[:, free] = np.where(bits == 1, high[free], low[free])
        keys = score(candidates)
        best = np.lexsort(keys.T[::-1])[0]
        return candidates[best]
    current = start.copy()
    current_key = tuple(score(current[None, :])[0])
    while True:
        flips = np.repeat(current[None, :], len(free), axis=0)
        rows = np.arange(len(free))
        flips[rows, free] = np.where(current[free] == low[free], high[free], low[free])
        keys = score(flips)
        best = np.lexsort(keys.T[::-1])[0]
        if tuple(keys[best]) >= current_key:
            return current
        current, current_key = flips[best], tuple(keys[best])


def _settle_last_samples(con: duckdb.DuckDBPyConnection, assembly: Assembly) -> None:
    """With bytes or tokens, each cell's selection ends with a sample that crosses its planned
    amount. Taken in every cell, those overshoots add up, and a fraction could miss its bound by
    more than one sample. Choose, per cell, whether that last sample stays, preferring in turn:
    every bound met within the largest sample, the planned total reached, the bounds met as
    exactly as whole samples allow, the total closest to the plan."""
    import numpy as np

    cells = con.execute(
        """
        SELECT p.category, p.source, p.g, sum(p.size), arg_max(p.size, p.n_in_cell), max(p.n_in_cell), any_value(planned.amount)
        FROM picked p JOIN planned USING (category, source, g) GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    if not cells:
        return
    high = np.array([float(cell[3]) for cell in cells])
    amount = np.array([float(cell[6]) for cell in cells])
    last = np.array([float(cell[4]) for cell in cells])
    low = np.where(high > amount, high - last, high)
    if np.array_equal(low, high):
        return
    groups = _Groups.of(assembly.policy, [(str(cell[0]), str(cell[1])) for cell in cells])
    # The largest sample sure to stay (only a cell's last sample can cross its amount).
    largest = float(
        con.execute(
            "SELECT coalesce(max(p.size), 0) FROM picked p JOIN planned USING (category, source, g) "
            "WHERE p.cum <= planned.amount"
        ).fetchall()[0][0]
    )
    planned = float(amount.sum())

    def score(candidates: Any) -> Any:
        excess = groups.excess(candidates).max(axis=1, initial=0.0)
        total = candidates.sum(axis=1)
        return np.column_stack(
            [
                np.maximum(excess - largest, 0),
                total < planned,
                np.maximum(excess, 0),
                np.abs(total - planned),
            ]
        )

    kept = _best_choice(low, high, score, high)
    dropped = [
        (cell[0], cell[1], cell[2], cell[5])
        for cell, units in zip(cells, kept, strict=True)
        if units < float(cell[3])
    ]
    if dropped:
        con.executemany(
            "DELETE FROM picked WHERE category = ? AND source = ? AND g = ? AND n_in_cell = ?",
            dropped,
        )


def unit_shard_cuts(
    streams: list[tuple[str, str, Any]], policy: Policy, shards: int, tolerance: float
) -> Any:
    """Where each stream is cut into output shards when the unit is bytes or tokens.

    A stream is one category's samples (one capped source's, when the policy caps sources), in
    their interleaved order, with their sizes in the policy's unit: ``(category, source or "",
    sizes)``. Shard boundaries fall by units, not rows: at boundary i of `shards`, every stream
    is cut just before or just after the sample that crosses i/`shards` of its units, so each
    shard gets its proportional share of every stream's units, within the samples at its two
    ends (shards then have roughly, not exactly, equal numbers of rows). Which side each crossing
    sample goes to is chosen, boundary by boundary, so that the shard just closed meets every
    fraction constraint within `tolerance` (the largest sample of the set) and, among such
    choices, so that the set so far stays closest to the whole set's composition — which keeps
    the shards to come able to meet them too.

    Returns an integer array (shards + 1) × streams: row i holds, per stream, how many of its
    samples go into shards before i (row 0 is zeros, the last row the stream lengths).
    """
    import numpy as np

    k = len(streams)
    cums = [
        np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))]) for *_, sizes in streams
    ]
    units = np.array([cum[-1] for cum in cums], dtype=float)
    counts = np.array([len(cum) - 1 for cum in cums], dtype=np.int64)
    groups = _Groups.of(policy, [(category, source) for category, source, _ in streams])
    whole = units.sum()
    shares = groups.members @ units / whole if whole else np.zeros(len(groups.names))
    # Per stream and boundary, the cuts just before and just after the crossing sample (the
    # same cut when a boundary falls between two samples); a stream without units spreads its rows.
    fractions = np.arange(1, shards) / shards
    before = np.empty((shards - 1, k), dtype=np.int64)
    after = np.empty((shards - 1, k), dtype=np.int64)
    for c in range(k):
        if units[c] == 0:
            before[:, c] = after[:, c] = counts[c] * np.arange(1, shards) // shards
        else:
            targets = units[c] * fractions
            right = np.searchsorted(cums[c], targets, side="right") - 1
            left = np.searchsorted(cums[c], targets, side="left")
            before[:, c], after[:, c] = np.minimum(right, left), np.maximum(right, left)
    cuts = np.zeros((shards + 1, k), dtype=np.int64)
    cuts[shards] = counts
    done = np.zeros(k)
    columns = np.arange(k)
    for i in range(1, shards):
        low = np.maximum(before[i - 1], cuts[i - 1])
        high = np.maximum(after[i - 1], cuts[i - 1])
        low_units = np.array([cums[c][low[c]] for c in columns], dtype=float)
        high_units = np.array([cums[c][high[c]] for c in columns], dtype=float)
        target = units * i / shards
        nearest = np.where(
            np.abs(high_units - target) < np.abs(low_units - target), high_units, low_units
        )

        def score(prefix: Any, done: Any = done, target: Any = target) -> Any:
            shard_excess = groups.excess(prefix - done).max(axis=1, initial=0.0)
            drift = np.abs(
                prefix @ groups.members.T - shares * prefix.sum(axis=1, keepdims=True)
            ).max(axis=1, initial=0.0)
            return np.column_stack(
                [
                    np.maximum(shard_excess - tolerance, 0),
                    drift,
                    np.abs(prefix - target).sum(axis=1),
                ]
            )

        chosen = _best_choice(low_units, high_units, score, nearest)
        cuts[i] = np.where(chosen == high_units, high, low)
        done = chosen
    return cuts


def _order_by_units(con: duckdb.DuckDBPyConnection, assembly: Assembly, order: str) -> list[int]:
    """Table `chosen` for a bytes or tokens target: rows interleaved per stream (category, or
    category and capped source) as for rows, shards cut by units (:func:`unit_shard_cuts`)."""
    import numpy as np

    policy = assembly.policy
    capped = sorted(rule.name for rule in policy.sources if rule.max_fraction < 1)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE picked_rows AS
        SELECT p.* EXCLUDE (cum, n_in_cell),
               row_number() OVER (
                   PARTITION BY p.category, p.stream
                   ORDER BY coalesce((p.cum - p.size / 2.0) / nullif(t.units, 0), p.n_in_cell), p.source, p.g, p.rank, p.sample_id
               ) - 1 AS m
        FROM (
            SELECT *, CASE WHEN list_contains($capped::VARCHAR[], source) THEN source ELSE '' END AS stream FROM picked
        ) p JOIN (
            SELECT category, source, g, sum(size) AS units FROM picked GROUP BY ALL
        ) t USING (category, source, g)
        """,
        {"capped": capped},
    )
    con.execute("DROP TABLE picked")
    streams = con.execute(
        "SELECT category, stream, count(*) FROM picked_rows GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    sizes = con.execute("SELECT size FROM picked_rows ORDER BY category, stream, m").fetchnumpy()[
        "size"
    ]
    total_rows = int(sum(n for *_, n in streams))
    shard_rows = policy.output.shard_rows
    shards = max(1, -(-total_rows // shard_rows))
    ends = np.cumsum([int(n) for *_, n in streams])
    cut_sizes = np.split(np.asarray(sizes, dtype=np.int64), ends[:-1]) if streams else []
    largest = float(sizes.max()) if len(sizes) else 0.0
    cuts = unit_shard_cuts(
        [(str(c), str(s), z) for (c, s, _n), z in zip(streams, cut_sizes, strict=True)],
        policy,
        shards,
        largest,
    )
    quota_rows: list[tuple[str, str, int, int, int, int]] = []
    starts: list[int] = []
    base = 0
    for i in range(shards):
        sizes_i = cuts[i + 1] - cuts[i]
        if not sizes_i.sum():
            continue  # an empty shard (samples larger than a shard's share) is no file
        shard_no = len(starts)
        starts.append(base)
        for (category, stream, _n), lo, hi in zip(streams, cuts[i], cuts[i + 1], strict=True):
            if hi > lo:
                quota_rows.append((category, stream, shard_no, int(lo), int(hi), base))
        base += int(sizes_i.sum())
    con.execute(
        "CREATE OR REPLACE TEMP TABLE quota (category VARCHAR, source VARCHAR, shard_no BIGINT, lo BIGINT, hi BIGINT, base BIGINT)"
    )
    if quota_rows:
        con.executemany("INSERT INTO quota VALUES (?, ?, ?, ?, ?, ?)", quota_rows)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE chosen AS
        SELECT p.* EXCLUDE (m, g, stream),
               q.base + row_number() OVER (
                   PARTITION BY q.shard_no
                   ORDER BY (p.m - q.lo + 0.5) / (q.hi - q.lo), CASE p.category {order} END, p.rank, p.sample_id
               ) - 1 AS out_pos,
               q.shard_no AS out_shard
        FROM picked_rows p JOIN quota q
        ON p.category = q.category AND p.stream = q.source AND p.m >= q.lo AND p.m < q.hi
        """
    )
    con.execute("DROP TABLE picked_rows")
    return starts


def cell_quotas(
    cells: list[tuple[str, str, int]], shard_rows: int, capped: set[str]
) -> list[list[int]] | None:
    """Rows of each (category, source) cell per output shard such that every shard is within
    one row of its share on the four category groups (as :func:`shard_quotas`) and under each
    capped source's share plus one row. A small integer program (HiGHS); ``None`` when it has
    no solution quickly or there are too many shards (the caller falls back to categories)."""
    total = sum(n for _c, _s, n in cells)
    if total == 0:
        return []
    sizes = [shard_rows] * (total // shard_rows) + (
        [total % shard_rows] if total % shard_rows else []
    )
    if len(sizes) * len(cells) > 20_000:
        return None
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    shards, k = len(sizes), len(cells)
    n_vars = shards * k
    rows: list[np.ndarray] = []
    lower: list[float] = []
    upper: list[float] = []

    def add(indices: list[int], lo: float, hi: float) -> None:
        row = np.zeros(n_vars)
        row[indices] = 1
        rows.append(row)
        lower.append(lo)
        upper.append(hi)

    for i, size in enumerate(sizes):
        add([i * k + j for j in range(k)], size, size)
    for j, (_c, _s, n) in enumerate(cells):
        add([i * k + j for i in range(shards)], n, n)
    groups: list[tuple[list[int], int]] = [
        ([j for j, cell in enumerate(cells) if cell[0] == "fresh_real"], 1),
        ([j for j, cell in enumerate(cells) if cell[0] in ("fresh_real", "used_real")], 1),
        ([j for j, cell in enumerate(cells) if cell[0] == "synthetic"], -1),
        ([j for j, cell in enumerate(cells) if cell[0] == "unknown"], -1),
    ]
    groups += [
        ([j for j, cell in enumerate(cells) if cell[1] == source], -1) for source in sorted(capped)
    ]
    for members, sign in groups:
        if not members:
            continue
        share = sum(cells[j][2] for j in members) / total
        for i, size in enumerate(sizes):
            ideal = share * size
            indices = [i * k + j for j in members]
            if sign > 0:
                add(indices, math.floor(ideal + 1e-9), np.inf)
            else:
                add(indices, 0, math.ceil(ideal - 1e-9))
    result = milp(
        np.zeros(n_vars),
        constraints=LinearConstraint(np.array(rows), lower, upper),
        integrality=np.ones(n_vars),
        bounds=Bounds(0, np.inf),
        options={"time_limit": 10.0},
    )
    if result.status != 0 or result.x is None:
        return None
    values = np.rint(result.x).astype(int)
    return [[int(values[i * k + j]) for j in range(k)] for i in range(shards)]


def shard_quotas(counts: list[int], shard_rows: int) -> list[list[int]]:
    """How many rows of each category (fresh real, used real, synthetic, unknown) go into each
    output shard, so that in every shard the floors (fresh real, all real) are short by less than
    one row of their share and the caps (synthetic, unknown) over by less than one row.

    This is :func:`cell_quotas` with one cell per category: the per-shard bounds form, with the
    shard sizes and category totals, a transportation problem with a laminar family per shard,
    whose linear program has integral vertices. Very many shards use :func:`_greedy_quotas`."""
    if sum(counts) == 0:
        return []
    cells = [(category, category, n) for category, n in zip(CATEGORIES, counts, strict=True)]
    quotas = cell_quotas(cells, shard_rows, set())
    return quotas if quotas is not None else _greedy_quotas(counts, shard_rows)


def _greedy_quotas(counts: list[int], shard_rows: int) -> list[list[int]]:
    """Shard quotas for very many shards, shard by shard: each category gets the floor or the
    ceiling of what keeps it on its share; among those the choice with the smallest worst group
    error wins. Without lookahead a group can miss its share by up to two rows."""
    import itertools

    total = sum(counts)
    remaining = list(counts)
    assigned = [0] * len(counts)
    done = 0
    shares = [c / total if total else 0.0 for c in counts]
    groups = [((0,), 1), ((0, 1), 1), ((2,), -1), ((3,), -1)]  # (categories, +1 floor / -1 cap)
    quotas = []
    while done < total:
        size = min(shard_rows, total - done)
        # What each category should have reached by the end of this shard, less what it has.
        target = [share * (done + size) - got for share, got in zip(shares, assigned, strict=True)]
        options = [
            sorted({max(0, min(r, math.floor(x))), max(0, min(r, math.ceil(x)))})
            for x, r in zip(target, remaining, strict=True)
        ]
        best: tuple[float, float, tuple[int, ...]] | None = None
        for combo in itertools.product(*options):
            if sum(combo) != size:
                continue
            worst = 0.0
            for members, sign in groups:
                got = sum(combo[k] for k in members)
                want = sum(shares[k] for k in members) * size
                worst = max(worst, (want - got) if sign > 0 else (got - want))
            drift = sum(abs(c - x) for c, x in zip(combo, target, strict=True))
            key = (worst, drift, combo)
            if best is None or key < best:
                best = key
        if best is None:  # rounding left no exact combination: widen to every feasible count
            wide = [range(0, min(r, size) + 1) for r in remaining]
            for combo in itertools.product(*wide):
                if sum(combo) == size:
                    worst = max(
                        (
                            (sum(shares[k] for k in m) * size - sum(combo[k] for k in m))
                            if sign > 0
                            else (sum(combo[k] for k in m) - sum(shares[k] for k in m) * size)
                        )
                        for m, sign in groups
                    )
                    key = (
                        worst,
                        sum(abs(c - x) for c, x in zip(combo, target, strict=True)),
                        combo,
                    )
                    if best is None or key < best:
                        best = key
        assert best is not None
        chosen = list(best[2])
        quotas.append(chosen)
        remaining = [r - c for r, c in zip(remaining, chosen, strict=True)]
        assigned = [a + c for a, c in zip(assigned, chosen, strict=True)]
        done += size
    return quotas


_BREAKDOWNS = {
    "by_origin": "CASE WHEN category IN ('fresh_real', 'used_real') THEN 'real' ELSE category END",
    "by_generation": "CASE WHEN category IN ('fresh_real', 'used_real') THEN '0' WHEN category = 'synthetic' THEN generation::VARCHAR ELSE 'unknown' END",
    "by_source": "source",
    "by_freshness": "CASE category WHEN 'fresh_real' THEN 'fresh_real' WHEN 'used_real' THEN 'used_real' ELSE 'not_real' END",
}


def _compositions(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The composition of the whole set and of each output shard (`out_shard`), each breakdown
    in one grouped pass over `chosen`."""

    def empty() -> dict[str, Any]:
        return {"rows": 0, "units": 0, **{name: {} for name in _BREAKDOWNS}}

    overall = empty()
    shards: dict[int, dict[str, Any]] = {}
    for name, expression in _BREAKDOWNS.items():
        rows = con.execute(
            f"SELECT out_shard AS s, {expression} AS k, count(*), sum(size) "
            "FROM chosen GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        for shard_no, key, n, units in rows:
            for target in (overall, shards.setdefault(int(shard_no), empty())):
                slot = target[name].setdefault(str(key), {"rows": 0, "units": 0})
                slot["rows"] += int(n)
                slot["units"] += int(units or 0)
                if name == "by_origin":
                    target["rows"] += int(n)
                    target["units"] += int(units or 0)
    for target in (overall, *shards.values()):  # keys in a stable order
        for name in _BREAKDOWNS:
            target[name] = dict(sorted(target[name].items()))
    order = " ".join(f"WHEN '{cat}' THEN {i}" for i, cat in enumerate(CATEGORIES))
    overall["cells"] = [
        {"pool": category, "generation": generation, "source": source, "rows": int(n), "units": int(units or 0)}
        for _o, category, generation, source, n, units in con.execute(
            f"SELECT CASE category {order} END, category, "
            "CASE WHEN category IN ('fresh_real', 'used_real') THEN 0 WHEN category = 'synthetic' THEN generation END AS g, "
            "source, count(*), sum(size) FROM chosen GROUP BY ALL ORDER BY 1, 3 NULLS LAST, 4"
        ).fetchall()
    ]  # fmt: skip
    return overall, [shards[i] for i in sorted(shards)]


def _constraint_reports(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    overall: dict[str, Any],
    shards: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The constraints of the whole set (returned) and of each shard (added to its composition
    as `constraints`). Fractions hold exactly for a rows target; with bytes or tokens, within
    the largest sample of the set (`tolerance_units`). In a shard of a rows target, fractions
    hold within one row."""
    c = policy.constraints
    deepest: dict[int, int] = {}
    lowest: dict[int, float] = {}
    if c.max_generation is not None or c.min_origin_confidence > 0:
        confidence = "origin_confidence" if c.min_origin_confidence > 0 else "NULL::DOUBLE"
        for shard_no, generation, least in con.execute(
            "SELECT out_shard, max(CASE WHEN category = 'synthetic' THEN generation ELSE 0 END), "
            f"min({confidence}) FROM chosen WHERE category <> 'unknown' GROUP BY 1"
        ).fetchall():
            deepest[int(shard_no)] = int(generation)
            if least is not None:
                lowest[int(shard_no)] = float(least)
    if policy.target.unit == "rows":
        tolerance, shard_tolerance = 0, 1
    else:
        tolerance = int(con.execute("SELECT coalesce(max(size), 0) FROM chosen").fetchall()[0][0])
        shard_tolerance = tolerance
    for shard_no, shard in enumerate(shards):
        shard["constraints"] = constraint_report(
            policy,
            _amounts_of(shard),
            shard["units"],
            shard_tolerance,
            deepest_generation=deepest.get(shard_no, 0),
            lowest_confidence=lowest.get(shard_no, 1.0),
        )
    return constraint_report(
        policy,
        _amounts_of(overall),
        overall["units"],
        tolerance,
        deepest_generation=max(deepest.values(), default=0),
        lowest_confidence=min(lowest.values(), default=1.0),
    )


def _require_held(
    constraints: list[dict[str, Any]], shards: list[dict[str, Any]], unit: str
) -> None:
    """Invariant 4: a set that breaks a constraint, in total or (bytes, tokens) in a shard, is
    not written. The shards of a rows target are only reported: their quotas come from an
    integer program, except with very many shards, where :func:`_greedy_quotas` can miss a share
    by up to two rows (and the manifest says so)."""
    broken = [("the set", item) for item in constraints if not item["held"]]
    if unit != "rows":
        broken += [
            (f"output shard {index} (part-{index:05d})", item)
            for index, shard in enumerate(shards)
            for item in shard["constraints"]
            if not item["held"]
        ]
    if broken:
        where, item = broken[0]
        raise AssemblyError(
            f"{where} would break `{item['name']}` (achieved {item['achieved']:.4g}, bound "
            f"{item['bound']:g}, in {unit}) by more than one sample; nothing was written",
            "this is a bug in curator; meanwhile, a rows target or larger `output.shard_rows` may assemble",
        )


def _amounts_of(composition: dict[str, Any]) -> dict[str, int]:
    amounts = {k: v["units"] for k, v in composition["by_freshness"].items()}
    amounts["synthetic"] = composition["by_origin"].get("synthetic", {}).get("units", 0)
    amounts["unknown"] = composition["by_origin"].get("unknown", {}).get("units", 0)
    for source, v in composition["by_source"].items():
        amounts[f"source:{source}"] = v["units"]
    return amounts


def _write_outputs(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    snapshot_paths: list[str],
    tmp_dir: str,
    spill_dir: str,
    starts: list[int],
) -> list[dict[str, Any]]:
    """Write the chosen rows, in output order, as shards starting at the positions `starts`.

    Sorting the wide rows is what costs, so they are not sorted whole: DuckDB streams the chosen
    rows in whatever order it reads them, each with its output position; each batch is split by
    output shard into one uncompressed Arrow spill file per shard. Then each shard's spill file is
    memory-mapped, ordered by position and compressed, two shards at a time. Memory stays at
    DuckDB's read buffers plus two shards."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pyarrow.compute as pc

    first_positions = np.asarray(starts, dtype=np.int64)
    total = con.execute("SELECT count(*) FROM chosen").fetchall()[0][0]
    if total == 0 or not snapshot_paths:
        return []
    con.execute(f"SET memory_limit = '{DUCKDB_WRITE_MEMORY_LIMIT}'")
    reader = con.sql(
        f"SELECT s.* EXCLUDE (file_row_number), c.out_pos AS {_POSITION} "
        "FROM read_parquet($paths, file_row_number = true, union_by_name = true) s "
        "JOIN chosen c ON s.file_index = c.shard AND s.file_row_number = c.row",
        params={"paths": snapshot_paths},
    ).to_arrow_reader(_READ_BATCH_ROWS)
    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    try:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            shard_of = (
                np.searchsorted(first_positions, batch.column(_POSITION).to_numpy(), side="right")
                - 1
            )
            order = np.argsort(shard_of, kind="stable")
            grouped = batch.take(pa.array(order))
            shard_of = shard_of[order]
            cuts = np.flatnonzero(np.diff(shard_of)) + 1
            for lo, hi in zip(
                np.concatenate([[0], cuts]), np.concatenate([cuts, [len(shard_of)]]), strict=True
            ):
                shard_no = int(shard_of[lo])
                writer = writers.get(shard_no)
                if writer is None:
                    writer = writers[shard_no] = pa.ipc.new_file(
                        os.path.join(spill_dir, f"{shard_no}.arrow"), batch.schema
                    )
                writer.write_batch(grouped.slice(int(lo), int(hi - lo)))
    finally:
        for writer in writers.values():
            writer.close()
    # Nothing run-specific (ids, times) goes into the files: the same store, policy and seed
    # give byte-identical shards.
    metadata = {
        b"curator.version": __version__.encode(),
        b"curator.seed": str(policy.seed).encode(),
    }
    extension = "parquet" if policy.output.format == "parquet" else "jsonl"

    def finish(shard_no: int) -> dict[str, Any]:
        spill = os.path.join(spill_dir, f"{shard_no}.arrow")
        with pa.memory_map(spill) as source:
            table = pa.ipc.open_file(source).read_all()
            table = table.take(pc.sort_indices(table.column(_POSITION)))
        table = table.drop_columns([_POSITION])
        table = table.replace_schema_metadata(metadata)
        os.remove(spill)
        path = os.path.join(tmp_dir, f"part-{shard_no:05d}.{extension}")
        return _write_shard(path, table, extension)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(finish, sorted(writers)))


def _write_shard(path: str, table: pa.Table, extension: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from curator.store.shards import sha256_file, write_options

    if extension == "parquet":
        pq.write_table(table, path, row_group_size=65_536, **write_options(table.schema))
    else:
        with open(path, "w", encoding="utf-8") as handle:
            for row in table.to_pylist():
                handle.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
    return {
        "path": os.path.basename(path),
        "rows": table.num_rows,
        "bytes": os.path.getsize(path),
        "sha256": sha256_file(path),
    }


def _json_default(value: Any) -> Any:
    import base64

    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def assemble(
    store: Store,
    policy: Policy,
    out: str | os.PathLike[str],
    *,
    lineage: str | None = None,
    name: str | None = None,
    lock_timeout: float | None = None,
) -> Manifest:
    """Assemble a training set into `out` (see the module docstring). Holds the store's write
    lock throughout, so assemblies of one lineage see each other's usage in order.

    A run that was killed is picked up by running the same call again: one killed before its
    catalog commit left nothing recorded, and its leftovers (`OUT/.tmp-<id>/`, an unrecorded
    `manifests/<id>/`, its work directory) are removed before assembling; one killed after the
    commit is completed — its files placed, or rewritten from the recorded selection — so the
    set is byte for byte what an uninterrupted run writes (:func:`_complete`).

    Raises:
        InputError: `out` holds anything but what an interrupted assembly left.
        AssemblyError: `out` holds the unfinished set of another command (policy, lineage or
            name differ), or a recorded set cannot be completed.
    """
    from curator.store import catalog
    from curator.store.base import crash_point as _crash_point
    from curator.store.base import new_run_id
    from curator.store.locking import write_lock

    out_dir = Path(out).resolve()
    with write_lock(store.root, "assemble", lock_timeout):
        with store.connect(read_only=False) as rw:
            catalog.ensure(rw)
        temp_root = os.path.join(store.root, ".staging")
        os.makedirs(temp_root, exist_ok=True)
        interrupted = _clear_leftovers(store, out_dir, temp_root)
        if interrupted is not None:
            return _complete(store, policy, lineage, name, out_dir, interrupted, temp_root)
        if out_dir.exists() and any(out_dir.iterdir()):
            raise InputError(f"`{out_dir}` is not empty", "assemble into a new or empty directory")
        work = tempfile.mkdtemp(prefix=_WORK_PREFIX, dir=temp_root)
        session = _Session(store, os.path.join(work, "duckdb"))
        created_dir = not out_dir.exists()
        tmp_out = None
        committed = False
        try:
            assembly = prepare(store, policy, lineage, session)
            manifest_id = new_run_id()
            con = session.con
            starts = _select(con, assembly)
            overall, per_shard = _compositions(con)
            constraints = _constraint_reports(con, policy, overall, per_shard)
            _require_held(constraints, per_shard, policy.target.unit)
            out_dir.mkdir(parents=True, exist_ok=True)
            tmp_out = out_dir / f"{_TMP_PREFIX}{manifest_id}"
            tmp_out.mkdir()
            snapshot_paths = [store_path(store.root, s["path"]) for s in assembly.snapshot]
            spill_dir = os.path.join(work, "spill")
            os.makedirs(spill_dir)
            outputs = _write_outputs(con, policy, snapshot_paths, str(tmp_out), spill_dir, starts)
            _crash_point("assemble-written")
            sequence = 1 + int(
                con.execute(
                    "SELECT coalesce(max(sequence), 0) FROM cat.manifests WHERE lineage = ?",
                    [assembly.lineage],
                ).fetchall()[0][0]
            )
            manifest_dir = Path(store.root) / "manifests" / manifest_id
            manifest_dir.mkdir(parents=True)
            selection_path = manifest_dir / "selection.parquet"
            # `chosen` names shards by their index in the snapshot; the selection file by path.
            con.execute(
                "COPY (SELECT out_pos, sample_id, content_hash, category, origin, generation, model, source, size, "
                "$paths[shard::BIGINT + 1] AS shard, row FROM chosen ORDER BY out_pos) "
                f"TO '{str(selection_path).replace(chr(39), chr(39) * 2)}' (FORMAT parquet, COMPRESSION zstd)",
                {"paths": [s["path"] for s in assembly.snapshot]},
            )
            session.detach()
            data: dict[str, Any] = {
                "manifest_version": MANIFEST_VERSION,
                "manifest_id": manifest_id,
                "name": name or policy.name,
                "lineage": assembly.lineage,
                "sequence": sequence,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "curator_version": __version__,
                "seed": policy.seed,
                "policy": policy.to_json(),
                "freshness": {"used_manifests": assembly.used_manifests},
                "store": {"root": store.root, "shards": assembly.snapshot},
                "plan": assembly.plan.to_json(),
                "composition": {"overall": overall, "shards": per_shard},
                "constraints": constraints,
                "out_dir": str(out_dir),
                "selection": str(selection_path.relative_to(store.root)),
                "outputs": outputs,
            }
            validate_manifest(data)
            manifest = Manifest(data, out_dir / MANIFEST_FILE)
            manifest.save(manifest_dir / MANIFEST_FILE)
            _crash_point("assemble-recorded")
            # The catalog first, then the files: a failure (or a kill) before the commit leaves
            # no set in `out`; one after it leaves `.tmp-<id>/`, which the same command then
            # completes, so content is never wrongly fresh and a recorded set is never lost.
            with store.connect(read_only=False) as rw:
                catalog.ensure(rw)
                rw.execute("BEGIN TRANSACTION")
                try:
                    rw.execute(
                        "INSERT INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            manifest_id, data["name"], assembly.lineage, sequence, datetime.now(UTC), policy.seed,
                            policy.target.unit, policy.target.amount, overall["rows"], overall["units"], str(out_dir),
                            str((manifest_dir / MANIFEST_FILE).relative_to(store.root)), json.dumps(data["policy"]),
                            json.dumps(overall), __version__,
                        ],
                    )  # fmt: skip
                    rw.execute(
                        "INSERT INTO usage (manifest_id, content_hash, origin, fresh, sample_id, source, generation, model) "
                        "SELECT ?, content_hash, CASE WHEN category IN ('fresh_real', 'used_real') THEN 'real' ELSE category END, "
                        "category = 'fresh_real', sample_id, source, generation, model FROM read_parquet(?)",
                        [manifest_id, str(selection_path)],
                    )
                    rw.execute("COMMIT")
                except BaseException:
                    rw.execute("ROLLBACK")
                    raise
            committed = True
            _crash_point("assemble-committed")
            _place(manifest, out_dir, tmp_out)
            return manifest
        except BaseException as exc:
            if committed:
                if isinstance(exc, Exception):
                    raise AssemblyError(
                        f"manifest `{manifest_id}` was recorded, but placing its files in "
                        f"`{out_dir}` failed: {exc}",
                        "fix the cause and run the same command again: it completes the set",
                    ) from exc
                raise
            if created_dir and out_dir.exists() and not (out_dir / MANIFEST_FILE).exists():
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
        finally:
            session.close()
            shutil.rmtree(work, ignore_errors=True)
            if not committed and tmp_out is not None and tmp_out.exists():
                shutil.rmtree(tmp_out, ignore_errors=True)


#: Prefixes of what an assembly writes before it is done: its work directory under the store's
#: `.staging/`, and its output directory inside `out`.
_WORK_PREFIX = "assemble-"
_TMP_PREFIX = ".tmp-"


def _place(manifest: Manifest, out_dir: Path, tmp_out: Path) -> None:
    """Move the output files from `tmp_out` into `out_dir` (those already there stay), then
    write `manifest.json` last and remove `tmp_out`: a set is complete when its manifest is."""
    from curator.store.base import crash_point as _crash_point

    for index, output in enumerate(manifest.outputs):
        staged = tmp_out / output["path"]
        if staged.exists():
            os.replace(staged, out_dir / output["path"])
        if index == 0:
            _crash_point("assemble-placing")
    manifest.save(out_dir / MANIFEST_FILE)
    shutil.rmtree(tmp_out, ignore_errors=True)


def _clear_leftovers(store: Store, out_dir: Path, temp_root: str) -> str | None:
    """Under the write lock, remove what killed assemblies left: every assembly work directory
    (no other assembly can be running), every `manifests/<id>/` the catalog does not record, and
    each `out/.tmp-<id>/` of an unrecorded manifest. Returns the id of a recorded manifest whose
    `out/.tmp-<id>/` is still there: its assembly was killed after the catalog commit."""
    for work in os.listdir(temp_root):
        if work.startswith(_WORK_PREFIX):
            shutil.rmtree(os.path.join(temp_root, work), ignore_errors=True)
    with store.connect(read_only=True) as con:
        recorded = {
            row[0]: row[1]
            for row in con.execute("SELECT manifest_id, out_dir FROM manifests").fetchall()
        }
    manifests_root = Path(store.root) / "manifests"
    if manifests_root.is_dir():
        for directory in manifests_root.iterdir():
            if directory.is_dir() and directory.name not in recorded:
                shutil.rmtree(directory, ignore_errors=True)
    unfinished = None
    if out_dir.is_dir():
        for entry in sorted(out_dir.iterdir()):
            if not (entry.is_dir() and entry.name.startswith(_TMP_PREFIX)):
                continue
            manifest_id = entry.name[len(_TMP_PREFIX) :]
            if recorded.get(manifest_id) == str(out_dir):
                unfinished = manifest_id
            else:
                shutil.rmtree(entry, ignore_errors=True)
    return unfinished


def _complete(
    store: Store,
    policy: Policy,
    lineage: str | None,
    name: str | None,
    out_dir: Path,
    manifest_id: str,
    temp_root: str,
) -> Manifest:
    """Finish the set of `manifest_id`, recorded in the catalog by an assembly killed before it
    had placed its files, when this call is the same command (policy, lineage, name): the files
    already written (in `out` or its `.tmp-<id>/`) are kept when their checksums match, else all
    are rewritten from the recorded selection and must match the recorded checksums."""
    from curator.store.shards import sha256_file

    recorded = Manifest.load(Path(store.root) / "manifests" / manifest_id / MANIFEST_FILE)
    data = recorded.data
    tmp_out = out_dir / f"{_TMP_PREFIX}{manifest_id}"
    asked = {
        "policy": policy.to_json(),
        "lineage": resolve_lineage(policy, lineage) or DEFAULT_LINEAGE,
        "name": name or policy.name,
    }
    differing = [key for key, value in asked.items() if data[key] != value]
    if differing:
        raise AssemblyError(
            f"`{out_dir}` holds the unfinished set of manifest `{manifest_id}` "
            f"({data['lineage']} #{data['sequence']}), recorded by an assembly that was "
            f"interrupted after its catalog commit; this command's {' and '.join(differing)} "
            f"{'differs' if len(differing) == 1 else 'differ'} from that assembly's",
            "run the command that started it again to complete the set (its policy is in "
            f"`{Path(store.root) / 'manifests' / manifest_id / MANIFEST_FILE}`), or assemble into another --out",
        )

    def intact(output: dict[str, Any]) -> bool:
        return any(
            path.exists() and sha256_file(str(path)) == output["sha256"]
            for path in (out_dir / output["path"], tmp_out / output["path"])
        )

    how = "its files were in place"
    if not all(intact(output) for output in recorded.outputs):
        how = "its files were rewritten from the recorded selection"
        shutil.rmtree(tmp_out, ignore_errors=True)
        tmp_out.mkdir()
        for output in recorded.outputs:
            (out_dir / output["path"]).unlink(missing_ok=True)
        _rewrite_outputs(store, policy, data, tmp_out, temp_root)
        changed = [
            o["path"]
            for o in recorded.outputs
            if sha256_file(str(tmp_out / o["path"])) != o["sha256"]
        ]
        if changed:
            raise AssemblyError(
                f"manifest `{manifest_id}` was recorded by an interrupted assembly, but its files "
                f"cannot be rewritten as recorded: `{changed[0]}` differs from its checksum",
                "the store's shards or the curator version changed since; the set cannot be "
                "completed, so assemble into another --out (the recorded usage stands)",
            )
    manifest = Manifest(data, out_dir / MANIFEST_FILE)
    _place(manifest, out_dir, tmp_out)
    manifest.note = (
        f"completed manifest {manifest_id}, recorded by an assembly interrupted before it was "
        f"done; {how}"
    )
    return manifest


def _rewrite_outputs(
    store: Store, policy: Policy, data: dict[str, Any], tmp_out: Path, temp_root: str
) -> None:
    """Write a recorded set's files again, from its selection and its snapshot's shards."""
    import duckdb

    shards = [s["path"] for s in data["store"]["shards"]]
    paths = [store_path(store.root, path) for path in shards]
    missing = [path for path, full in zip(shards, paths, strict=True) if not os.path.exists(full)]
    if missing:
        raise AssemblyError(
            f"manifest `{data['manifest_id']}` was recorded by an interrupted assembly, but shard "
            f"`{missing[0]}` it was drawn from is gone, so its files cannot be rewritten",
            "assemble into another --out (the recorded usage stands)",
        )
    work = tempfile.mkdtemp(prefix=_WORK_PREFIX, dir=temp_root)
    con = duckdb.connect(
        config={"memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": os.path.join(work, "duckdb")}
    )
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(
            "CREATE TEMP TABLE chosen AS SELECT out_pos, list_position($shards, shard) - 1 AS shard, row "
            "FROM read_parquet($selection)",
            {"shards": shards, "selection": store_path(store.root, data["selection"], "selection")},
        )
        starts = [0]
        for output in data["outputs"][:-1]:
            starts.append(starts[-1] + int(output["rows"]))
        spill_dir = os.path.join(work, "spill")
        os.makedirs(spill_dir)
        _write_outputs(con, policy, paths, str(tmp_out), spill_dir, starts)
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)


def plan_only(store: Store, policy: Policy, *, lineage: str | None = None) -> Assembly:
    """Plan without writing anything (``--dry-run``, ``policy check``)."""
    work = tempfile.mkdtemp(prefix="curator-plan-")
    session = _Session(store, work)
    try:
        return prepare(store, policy, lineage, session)
    finally:
        session.close()
        shutil.rmtree(work, ignore_errors=True)


def manifests_of(store: Store) -> list[dict[str, Any]]:
    """Every manifest of the store, by lineage and sequence."""
    return store.sql(
        "SELECT manifest_id, name, lineage, sequence, created_at, unit, target, rows, units, out_dir "
        "FROM manifests ORDER BY lineage, sequence"
    ).to_pylist()


def find_manifest(store: Store, ident: str) -> Manifest:
    """A manifest by id, by name (the latest of that name), or by path."""
    if os.path.exists(ident):
        return Manifest.load(ident)
    for row in reversed(manifests_of(store)):
        if ident in (row["manifest_id"], row["name"]):
            return Manifest.load(
                Path(store.root) / "manifests" / row["manifest_id"] / MANIFEST_FILE
            )
    raise CuratorError(
        f"no manifest `{ident}` in store `{store.root}`", "list them with `curator manifest list`"
    )
