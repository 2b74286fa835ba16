"""Selection: which candidates each pool gives the set.

Candidates are taken in each cell of the plan (category, source, generation) in their seeded rank
order (:mod:`curator.assembly.pools`) until the cell's planned amount is reached. With bytes or
tokens, each cell's last sample crosses its amount; whether it stays is settled across cells, so
that the set meets every fraction within one sample. The fraction constraints as linear rows over
pools (:class:`FractionGroups`) and the search over two-way choices (:func:`best_choice`) serve the
per-shard cuts of :mod:`curator.assembly.quotas` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from curator.assembly.policy import Policy
    from curator.assembly.pools import Assembly


def pick_rows(con: duckdb.DuckDBPyConnection, assembly: Assembly) -> None:
    """Table `picked`: in each cell of the plan, the first candidates by rank until the cell's
    amount is reached (table `planned` holds the amounts). With bytes or tokens, whether each
    cell keeps the sample that crosses its amount is then settled across cells
    (:func:`settle_last_samples`). Drops the candidates (table `pool`)."""
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
        settle_last_samples(con, assembly)


#: Up to this many two-way choices are tried exhaustively; beyond it, one flip at a time.
_EXHAUSTIVE_CHOICES = 8


@dataclass(frozen=True)
class FractionGroups:
    """The policy's fraction constraints as rows over a list of pools: `members[j, c]` is 1 when
    pool c counts towards constraint j, `floor[j]` whether it is a floor (else a cap), `bound[j]`
    its fraction. Constraints that cannot bind (a floor of 0, a cap of 1) are left out."""

    names: list[str]
    members: Any  # numpy (constraints × pools)
    floor: Any  # numpy bool (constraints)
    bound: Any  # numpy float (constraints)

    @classmethod
    def of(cls, policy: Policy, pools: list[tuple[str, str]]) -> FractionGroups:
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


def best_choice(low: Any, high: Any, score: Callable[[Any], Any], start: Any) -> Any:
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


def settle_last_samples(con: duckdb.DuckDBPyConnection, assembly: Assembly) -> None:
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
    groups = FractionGroups.of(assembly.policy, [(str(cell[0]), str(cell[1])) for cell in cells])
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

    kept = best_choice(low, high, score, high)
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
