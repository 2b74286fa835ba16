"""Assembly: select samples from the store under a policy and write a training set.

1. Candidates (DuckDB, out of core): every live sample with its category — fresh real, used real,
   synthetic or unknown (a label below `min_origin_confidence` counts as unknown) — its size in
   the policy's unit, and its rank: md5 of the seed and its `content_hash`, so the selection
   depends only on the content and the seed (invariant 5). Exact duplicates collapse to the most
   trustworthy copy; synthetic samples deeper than `max_generation` are left out.
2. The plan (:mod:`curator.planner`): exact amounts per (category, source, generation).
3. Selection: in each cell, the first samples by rank until the cell's amount is reached.
4. Order: rows are interleaved so that every prefix of the set — and so every output shard — has
   each category and source in its planned share (within one sample).
5. Output: Parquet (or JSON Lines) shards and `manifest.json`, written under a temporary name and
   renamed. The wide rows are never sorted whole: they are read in storage order, spilled per
   output shard, and each shard is ordered on its own. The usage ledger is committed in the same
   catalog transaction as the manifest.
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

from curator import __version__
from curator.errors import CuratorError, InputError
from curator.manifest import MANIFEST_FILE, MANIFEST_VERSION, Manifest, validate_manifest
from curator.planner import CATEGORIES, Cell, Plan, Pool, plan
from curator.policy import Policy, PolicyError

if TYPE_CHECKING:
    import duckdb

    from curator.store import Store

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
        from curator.output import render_table

        p = self.plan
        rows = []
        for cell in sorted(set(p.amounts) | set(p.available), key=Cell.key):
            pool = p.available.get(cell, Pool(0, 0))
            planned = p.amounts.get(cell, 0)
            rows.append(
                (
                    cell.category.replace("_", " "),
                    "-" if cell.generation is None else cell.generation,
                    cell.source,
                    pool.units,
                    planned,
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
        for item in constraint_report(self.policy, _plan_amounts(p), p.total):
            lines.append(
                f"  {item['name']:<28} {item['relation']} {item['bound']:<8g} achieved {item['achieved']:.4f}  {'ok' if item['held'] else 'VIOLATED'}"
            )
        return "\n".join(lines)


def _plan_amounts(p: Plan) -> dict[str, int]:
    amounts: dict[str, int] = {cat: p.category_amount(cat) for cat in CATEGORIES}
    for cell, value in p.amounts.items():
        amounts[f"source:{cell.source}"] = amounts.get(f"source:{cell.source}", 0) + value
    return amounts


def constraint_report(
    policy: Policy, amounts: dict[str, int], total: int, tolerance: int = 0
) -> list[dict[str, Any]]:
    """Each constraint with its bound, the achieved fraction, whether it held and the margin.

    `tolerance` (in the policy's unit) is the size of the largest sample: with bytes or tokens,
    whole samples can overshoot a planned amount by less than one sample."""
    c = policy.constraints
    report = []

    def add(name: str, relation: str, bound: float, achieved_units: int) -> None:
        achieved = achieved_units / total if total else 0.0
        margin = achieved - bound if relation == ">=" else bound - achieved
        held = total == 0 or margin * total >= -tolerance - 1e-9 * max(1, total)
        entry = {
            "name": name,
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
    """The earlier manifests whose content counts as used: the policy's explicit list; else those
    of the lineage (the policy's `freshness.lineage`, else the assembly's); with no lineage at
    all, every manifest in the store (DESIGN.md's default)."""
    fresh = policy.freshness
    if fresh.manifests is not None:
        known = {row[0] for row in con.execute("SELECT manifest_id FROM cat.manifests").fetchall()}
        missing = [m for m in fresh.manifests if m not in known]
        if missing:
            raise PolicyError(
                f"`freshness.manifests` names `{missing[0]}`, which is not a manifest of this store",
                "list them with `curator manifest list`",
            )
        return sorted(fresh.manifests)
    use_lineage = fresh.lineage or lineage
    if use_lineage is None:
        query, params = "SELECT manifest_id FROM cat.manifests ORDER BY created_at, manifest_id", []
    else:
        query, params = (
            "SELECT manifest_id FROM cat.manifests WHERE lineage = ? ORDER BY sequence",
            [use_lineage],
        )
    return [row[0] for row in con.execute(query, params).fetchall()]


def prepare(store: Store, policy: Policy, lineage: str | None, session: _Session) -> Assembly:
    """Build the candidate table and plan the assembly."""
    con = session.con
    given_lineage = lineage or policy.freshness.lineage
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
    used = _used_manifests(con, policy, given_lineage)
    c = policy.constraints
    if used:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE used AS SELECT DISTINCT content_hash FROM cat.usage WHERE manifest_id IN (SELECT unnest(?::VARCHAR[]))",
            [used],
        )
    else:  # nothing used yet: no need to scan the ledger
        con.execute("CREATE OR REPLACE TEMP TABLE used (content_hash VARCHAR)")
    paths = [os.path.join(store.root, s["path"]) for s in snapshot]
    if not paths:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE pool AS SELECT NULL::VARCHAR AS sample_id, NULL::VARCHAR AS content_hash, NULL::VARCHAR AS category, NULL::VARCHAR AS origin, NULL::SMALLINT AS generation, NULL::VARCHAR AS model, NULL::VARCHAR AS source, NULL::BIGINT AS shard, NULL::BIGINT AS row, NULL::BIGINT AS size, NULL::UHUGEINT AS rank WHERE false"
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
                SELECT sample_id, content_hash, origin, generation, model, source, shard, row, size,
                       CASE WHEN origin_confidence < $confidence THEN 'unknown'
                            WHEN origin = 'real' AND content_hash NOT IN (SELECT content_hash FROM used) AND {fresh_clause} THEN 'fresh_real'
                            WHEN origin = 'real' THEN 'used_real'
                            WHEN origin = 'synthetic' THEN 'synthetic'
                            ELSE 'unknown' END AS category,
                       md5_number('{int(policy.seed)}:' || content_hash) AS rank
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
    for category, source, generation, rows, units in con.execute(
        "SELECT category, source, CASE WHEN category = 'synthetic' THEN generation END AS g, count(*), sum(size) FROM pool GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        available[Cell(category, source, None if generation is None else int(generation))] = Pool(
            int(rows), int(units or 0)
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


def _select(con: duckdb.DuckDBPyConnection, assembly: Assembly) -> None:
    """Table `chosen`: the selected rows with their output position (`out_pos`)."""
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
               ) - 1 AS out_pos
        FROM picked_rows p JOIN quota q ON {key} AND p.m >= q.lo AND p.m < q.hi
        """
    )
    con.execute("DROP TABLE picked_rows")


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


def _compositions(
    con: duckdb.DuckDBPyConnection, shard_rows: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The composition of the whole set and of each output shard (rows `out_pos // shard_rows`),
    each breakdown in one grouped pass over `chosen`."""

    def empty() -> dict[str, Any]:
        return {"rows": 0, "units": 0, **{name: {} for name in _BREAKDOWNS}}

    overall = empty()
    shards: dict[int, dict[str, Any]] = {}
    for name, expression in _BREAKDOWNS.items():
        rows = con.execute(
            f"SELECT out_pos // {int(shard_rows)} AS s, {expression} AS k, count(*), sum(size) "
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
    return overall, [shards[i] for i in sorted(shards)]


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
) -> list[dict[str, Any]]:
    """Write the chosen rows, in output order, as shards of `shard_rows` rows.

    Sorting the wide rows is what costs, so they are not sorted whole: DuckDB streams the chosen
    rows in whatever order it reads them, each with its output position; each batch is split by
    output shard into one uncompressed Arrow spill file per shard. Then each shard's spill file is
    memory-mapped, ordered by position and compressed, two shards at a time. Memory stays at
    DuckDB's read buffers plus two shards."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pyarrow.compute as pc

    shard_rows = policy.output.shard_rows
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
            shard_of = batch.column(_POSITION).to_numpy() // shard_rows
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

    from curator.shards import sha256_file, write_options

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
    lock throughout, so assemblies of one lineage see each other's usage in order."""
    from curator import catalog
    from curator.locking import write_lock
    from curator.store import new_run_id

    out_dir = Path(out).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"`{out_dir}` is not empty", "assemble into a new or empty directory")
    with write_lock(store.root, "assemble", lock_timeout):
        with store.connect(read_only=False) as rw:
            catalog.ensure(rw)
        temp_root = os.path.join(store.root, ".staging")
        os.makedirs(temp_root, exist_ok=True)
        work = tempfile.mkdtemp(prefix="assemble-", dir=temp_root)
        session = _Session(store, os.path.join(work, "duckdb"))
        created_dir = not out_dir.exists()
        tmp_out = None
        try:
            assembly = prepare(store, policy, lineage, session)
            manifest_id = new_run_id()
            con = session.con
            _select(con, assembly)
            out_dir.mkdir(parents=True, exist_ok=True)
            tmp_out = out_dir / f".tmp-{manifest_id}"
            tmp_out.mkdir()
            snapshot_paths = [os.path.join(store.root, s["path"]) for s in assembly.snapshot]
            spill_dir = os.path.join(work, "spill")
            os.makedirs(spill_dir)
            outputs = _write_outputs(con, policy, snapshot_paths, str(tmp_out), spill_dir)
            overall, per_shard = _compositions(con, policy.output.shard_rows)
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
                "constraints": constraint_report(
                    policy,
                    _amounts_of(overall),
                    overall["units"],
                    0
                    if policy.target.unit == "rows"
                    else int(
                        con.execute("SELECT coalesce(max(size), 0) FROM chosen").fetchall()[0][0]
                    ),
                ),
                "out_dir": str(out_dir),
                "selection": str(selection_path.relative_to(store.root)),
                "outputs": outputs,
            }
            validate_manifest(data)
            manifest = Manifest(data, out_dir / MANIFEST_FILE)
            for output in outputs:
                os.replace(tmp_out / output["path"], out_dir / output["path"])
            manifest.save(out_dir / MANIFEST_FILE)
            manifest.save(manifest_dir / MANIFEST_FILE)
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
            return manifest
        except BaseException:
            if created_dir and out_dir.exists() and not (out_dir / MANIFEST_FILE).exists():
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
        finally:
            session.close()
            shutil.rmtree(work, ignore_errors=True)
            if tmp_out is not None and tmp_out.exists():
                shutil.rmtree(tmp_out, ignore_errors=True)


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
