"""Per-shard quotas: where fractions are enforced in every output shard, and how the pools are
interleaved inside a shard.

With a rows target, shards have `shard_rows` rows and how many of each category (and capped
source) each holds comes from a small integer program (:func:`cell_quotas`, :func:`shard_quotas`),
so every shard meets every fraction within one row. With bytes or tokens, shards are cut by units
(:func:`unit_shard_cuts`), so every shard meets every fraction within the largest sample, in that
unit. Inside a shard the pools are interleaved by their rows' positions within their pool.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from curator.assembly.planner import CATEGORIES
from curator.assembly.policy import Output, PolicyError
from curator.assembly.selection import FractionGroups, best_choice

if TYPE_CHECKING:
    import duckdb

    from curator.assembly.policy import Policy
    from curator.assembly.pools import Assembly


def order_into_shards(con: duckdb.DuckDBPyConnection, assembly: Assembly) -> list[int]:
    """Table `chosen`: the picked rows (table `picked`, :func:`curator.assembly.selection.pick_rows`)
    with their output position (`out_pos`) and output shard (`out_shard`). Returns each output
    shard's first position."""
    order = " ".join(f"WHEN '{cat}' THEN {i}" for i, cat in enumerate(CATEGORIES))
    if assembly.policy.target.unit != "rows":
        return _order_by_units(con, assembly, order)
    return _order_by_rows(con, assembly, order)


def _order_by_rows(con: duckdb.DuckDBPyConnection, assembly: Assembly, order: str) -> list[int]:
    """Table `chosen` for a rows target: shards of `shard_rows` rows, each category's (or, when
    the policy caps sources, each (category, source) cell's) rows spread over the shards by
    :func:`cell_quotas` or :func:`shard_quotas`, and interleaved inside each shard."""
    cell_totals = con.execute(
        "SELECT category, source, g, count(*), sum(size) FROM picked GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    # Rows per shard: by (category, source) cell when the shards' source caps can be met too,
    # else by category (sources then follow their spread within each category).
    per_source: dict[tuple[str, str], int] = {}
    for category, source, _g, n, _units in cell_totals:
        per_source[(str(category), str(source))] = per_source.get((category, source), 0) + int(n)
    shard_rows = assembly.policy.output.shard_rows
    sizes = shard_sizes(sum(per_source.values()), assembly.policy.output)
    capped = {rule.name for rule in assembly.policy.sources if rule.max_fraction < 1}
    quota_cells = [(c, src, n) for (c, src), n in sorted(per_source.items())]
    per_cell = cell_quotas(quota_cells, shard_rows, capped, sizes=sizes) if capped else None
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
        quotas = shard_quotas([counts.get(cat, 0) for cat in CATEGORIES], shard_rows, sizes=sizes)
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
    groups = FractionGroups.of(policy, [(category, source) for category, source, _ in streams])
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

        chosen = best_choice(low_units, high_units, score, nearest)
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
    sizes = np.asarray(
        con.execute("SELECT size FROM picked_rows ORDER BY category, stream, m").fetchnumpy()[
            "size"
        ],
        dtype=np.int64,
    )
    total_rows = int(sum(n for *_, n in streams))
    shards = max(1, len(shard_sizes(total_rows, policy.output)))
    ends = np.cumsum([int(n) for *_, n in streams])
    cut_sizes = np.split(sizes, ends[:-1]) if streams else []
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
    asked = policy.output.num_shards or policy.output.shards_multiple_of
    if asked and len(starts) != shards:
        key = "num_shards" if policy.output.num_shards else "shards_multiple_of"
        raise PolicyError(
            f"`output.{key}` = {asked}: the set's {total_rows:,} samples fill only "
            f"{len(starts)} of {shards} shards of equal {policy.target.unit} (its largest "
            "samples are larger than a shard's share)",
            f"give a smaller `output.{key}`, or a larger target",
        )
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


def shard_sizes(total: int, output: Output) -> list[int]:
    """Rows of each output shard of a set of `total` rows (with bytes or tokens, how many shards
    there are). By default shards of `output.shard_rows`, the last one the rest; with
    `output.num_shards` that many shards, and with `output.shards_multiple_of` the multiple of it
    nearest above `total / shard_rows` shards (at most `total`): their sizes then differ by at
    most one row, the larger first, so a set divides evenly over data-parallel ranks.

    >>> shard_sizes(10, Output(num_shards=4))
    [3, 3, 2, 2]

    Raises:
        PolicyError: more shards asked for than the set has rows.
    """
    if total == 0:
        return []
    if output.num_shards is not None:
        count = output.num_shards
        if count > total:
            raise PolicyError(
                f"`output.num_shards` = {count:,} is more than the set's {total:,} "
                f"sample{'s' if total != 1 else ''}: a shard would be empty",
                f"give at most {total:,} shards, or a larger target",
            )
    elif output.shards_multiple_of is not None:
        multiple = output.shards_multiple_of
        if multiple > total:
            raise PolicyError(
                f"`output.shards_multiple_of` = {multiple:,} is more than the set's {total:,} "
                f"sample{'s' if total != 1 else ''}: a shard would be empty",
                f"give at most {total:,}, or a larger target",
            )
        wanted = -(-total // output.shard_rows)
        count = min(-(-wanted // multiple) * multiple, total // multiple * multiple)
    else:
        shard_rows = output.shard_rows
        return [shard_rows] * (total // shard_rows) + (
            [total % shard_rows] if total % shard_rows else []
        )
    return [total // count + (1 if i < total % count else 0) for i in range(count)]


def cell_quotas(
    cells: list[tuple[str, str, int]],
    shard_rows: int,
    capped: set[str],
    *,
    sizes: list[int] | None = None,
) -> list[list[int]] | None:
    """Rows of each (category, source) cell per output shard such that every shard is within
    one row of its share on the four category groups (as :func:`shard_quotas`) and under each
    capped source's share plus one row. The shards have `sizes` rows (default: `shard_rows`
    each, the last one the rest). A small integer program (HiGHS); ``None`` when it has no
    solution quickly or there are too many shards (the caller falls back to categories)."""
    total = sum(n for _c, _s, n in cells)
    if total == 0:
        return []
    if sizes is None:
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


def shard_quotas(
    counts: list[int], shard_rows: int, *, sizes: list[int] | None = None
) -> list[list[int]]:
    """How many rows of each category (fresh real, used real, synthetic, unknown) go into each
    output shard, so that in every shard the floors (fresh real, all real) are short by less than
    one row of their share and the caps (synthetic, unknown) over by less than one row.

    This is :func:`cell_quotas` with one cell per category: the per-shard bounds form, with the
    shard sizes and category totals, a transportation problem with a laminar family per shard,
    whose linear program has integral vertices. Very many shards use :func:`_greedy_quotas`.
    The shards have `sizes` rows (default: `shard_rows` each, the last one the rest)."""
    if sum(counts) == 0:
        return []
    cells = [(category, category, n) for category, n in zip(CATEGORIES, counts, strict=True)]
    quotas = cell_quotas(cells, shard_rows, set(), sizes=sizes)
    return quotas if quotas is not None else _greedy_quotas(counts, shard_rows, sizes)


def _greedy_quotas(
    counts: list[int], shard_rows: int, sizes: list[int] | None = None
) -> list[list[int]]:
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
    quotas: list[list[int]] = []
    while done < total:
        size = sizes[len(quotas)] if sizes is not None else min(shard_rows, total - done)
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
