"""The planner: exact amounts per pool that meet every constraint of a policy.

Pools are cells of (category, source, generation): categories are fresh real, used real,
synthetic (by generation) and unknown. The planner finds the largest total not above the target
for which some split across the cells meets every constraint (a linear program), and then the
split closest to the *natural* mix — what drawing at random from the eligible pool, weighted by
source, would give — that meets them (a second linear program, minimising the total deviation).
Amounts are integers in the policy's unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from curator.assembly.policy import Policy
from curator.core.errors import CuratorError

CATEGORIES: tuple[str, ...] = ("fresh_real", "used_real", "synthetic", "unknown")
REAL_CATEGORIES = ("fresh_real", "used_real")


class ShortfallError(CuratorError):
    """The policy's target cannot be met and `on_shortfall` is ``error``; nothing was written."""


@dataclass(frozen=True, order=True)
class Cell:
    """One pool: a category, a source and (for synthetic samples) a generation."""

    category: str
    source: str
    generation: int | None = None

    def key(self) -> tuple[int, str, int]:
        return (
            CATEGORIES.index(self.category),
            self.source,
            -1 if self.generation is None else self.generation,
        )


@dataclass
class Pool:
    """What one cell holds: rows, and units (in the policy's unit). `lowest_confidence`: the
    lowest origin confidence among them, when the policy sets `min_origin_confidence`."""

    rows: int
    units: int
    lowest_confidence: float | None = None


@dataclass
class Plan:
    """Amounts per cell, in the policy's unit, and how they were reached."""

    unit: str
    target: int
    total: int
    amounts: dict[Cell, int]
    available: dict[Cell, Pool]
    shrunk: bool = False
    binding: str | None = None
    notes: list[str] = field(default_factory=list)

    def category_amount(self, *categories: str) -> int:
        return sum(v for c, v in self.amounts.items() if c.category in categories)

    def to_json(self) -> dict[str, Any]:
        cells = sorted(set(self.amounts) | set(self.available), key=Cell.key)
        return {
            "unit": self.unit,
            "target": self.target,
            "total": self.total,
            "shrunk": self.shrunk,
            "binding_constraint": self.binding,
            "notes": list(self.notes),
            "cells": [
                {
                    "category": c.category,
                    "source": c.source,
                    "generation": c.generation,
                    "planned": self.amounts.get(c, 0),
                    "available": self.available[c].units if c in self.available else 0,
                }
                for c in cells
            ],
        }


def _lp_rows(policy: Policy, cells: list[Cell]) -> tuple[list[list[float]], list[float]]:
    """The inequality rows ``A·[x, T] <= 0`` of the constraints (T is the last variable)."""
    c = policy.constraints
    n = len(cells)
    rows: list[list[float]] = []

    def row(members: set[int], sign: float, fraction: float) -> list[float]:
        r = [sign if i in members else 0.0 for i in range(n)]
        r.append(-sign * fraction)
        return r

    index = {cat: {i for i, cell in enumerate(cells) if cell.category == cat} for cat in CATEGORIES}
    real = index["fresh_real"] | index["used_real"]
    if c.min_fresh_real_fraction > 0:
        rows.append(row(index["fresh_real"], -1.0, c.min_fresh_real_fraction))
    if c.min_real_fraction > 0:
        rows.append(row(real, -1.0, c.min_real_fraction))
    if c.max_synthetic_fraction < 1:
        rows.append(row(index["synthetic"], 1.0, c.max_synthetic_fraction))
    if c.max_unknown_fraction < 1:
        rows.append(row(index["unknown"], 1.0, c.max_unknown_fraction))
    for rule in policy.sources:
        if rule.max_fraction < 1:
            members = {i for i, cell in enumerate(cells) if cell.source == rule.name}
            if members:
                rows.append(row(members, 1.0, rule.max_fraction))
    return rows, [0.0] * len(rows)


def import_solver_in_background() -> None:
    """Start importing the solver (`scipy.optimize`, about 0.35 s) on a thread, while the
    caller opens the catalog and DuckDB finds the pools: the plan then does not wait for the
    whole import (assembly 0.1–0.2 s faster in bench/assemble.py, alternated runs)."""
    import importlib
    import threading

    threading.Thread(
        target=importlib.import_module, args=("scipy.optimize",), name="import-solver", daemon=True
    ).start()


def _max_total(policy: Policy, cells: list[Cell], available: list[int], target: int) -> float:
    from scipy.optimize import linprog

    n = len(cells)
    if n == 0:
        return 0.0
    a_ub, b_ub = _lp_rows(policy, cells)
    objective = [0.0] * n + [-1.0]
    a_eq = [[1.0] * n + [-1.0]]
    bounds = [(0.0, float(a)) for a in available] + [(0.0, float(target))]
    result = linprog(
        objective,
        A_ub=a_ub or None,
        b_ub=b_ub or None,
        A_eq=a_eq,
        b_eq=[0.0],
        bounds=bounds,
        method="highs",
    )
    if result.status != 0:  # pragma: no cover - T = 0 is always feasible
        return 0.0
    return float(result.x[-1])


def _closest_split(
    policy: Policy, cells: list[Cell], available: list[int], natural: list[float], total: int
) -> list[float]:
    from scipy.optimize import linprog

    n = len(cells)
    a_ub_t, _ = _lp_rows(policy, cells)
    # With T fixed, a row r·x - f·T <= 0 becomes r·x <= f·T.
    a_ub: list[list[float]] = []
    b_ub: list[float] = []
    for r in a_ub_t:
        a_ub.append(r[:n] + [0.0] * n)
        b_ub.append(-r[n] * total)
    for i in range(n):  # d_i >= |x_i - natural_i|
        plus = [0.0] * (2 * n)
        plus[i], plus[n + i] = 1.0, -1.0
        a_ub.append(plus)
        b_ub.append(natural[i])
        minus = [0.0] * (2 * n)
        minus[i], minus[n + i] = -1.0, -1.0
        a_ub.append(minus)
        b_ub.append(-natural[i])
    objective = [0.0] * n + [1.0] * n
    a_eq = [[1.0] * n + [0.0] * n]
    bounds = [(0.0, float(a)) for a in available] + [(0.0, None)] * n
    result = linprog(
        objective,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=[float(total)],
        bounds=bounds,
        method="highs",
    )
    if result.status != 0:
        raise CuratorError(
            f"internal planner error: no split of {total} meets the policy ({result.message})"
        )
    return [float(v) for v in result.x[:n]]


def _smooth_split(
    policy: Policy,
    cells: list[Cell],
    available: list[int],
    natural: list[float],
    total: int,
    start: list[float],
) -> list[float]:
    """Among the splits that meet the policy, the one closest to the natural mix in the
    chi-square sense, so that what one pool gives up is shared by the others in proportion
    (the L1 optimum of :func:`_closest_split` is not unique). Falls back to `start`."""
    import numpy as np
    from scipy.optimize import minimize

    n = len(cells)
    a_ub_t, _ = _lp_rows(policy, cells)
    t = np.array(natural, dtype=float)
    scale = np.maximum(t, 1e-9)
    rows = np.array([r[:n] for r in a_ub_t], dtype=float) if a_ub_t else np.zeros((0, n))
    bounds_t = np.array([-r[n] * total for r in a_ub_t], dtype=float)
    constraints = [{"type": "eq", "fun": lambda x: np.sum(x) - total, "jac": lambda x: np.ones(n)}]
    if len(rows):
        constraints.append(
            {"type": "ineq", "fun": lambda x: bounds_t - rows @ x, "jac": lambda x: -rows}
        )
    result = minimize(
        lambda x: float(np.sum((x - t) ** 2 / scale)),
        np.array(start, dtype=float),
        jac=lambda x: 2 * (x - t) / scale,
        bounds=[(0.0, float(a)) for a in available],
        constraints=constraints,
        method="SLSQP",
        options={"maxiter": 500, "ftol": 1e-10},
    )
    x = np.clip(result.x, 0, np.array(available, dtype=float))
    feasible = abs(x.sum() - total) < 1e-4 * max(1, total) and (
        not len(rows) or np.all(rows @ x <= bounds_t + 1e-4 * max(1, total))
    )
    return [float(v) for v in x] if result.success and feasible else start


def _integer_split(
    policy: Policy, cells: list[Cell], available: list[int], split: list[float], total: int
) -> dict[Cell, int]:
    """Round the split to integers summing to `total`, giving the rounding remainder first to
    fresh real cells (until the fresh floor is met), then real cells, then largest remainders."""
    c = policy.constraints
    amounts = [min(available[i], math.floor(split[i] + 1e-6)) for i in range(len(cells))]
    remainder = total - sum(amounts)
    need_fresh = math.ceil(c.min_fresh_real_fraction * total - 1e-9)
    need_real = math.ceil(c.min_real_fraction * total - 1e-9)
    cap = {
        "synthetic": math.floor(c.max_synthetic_fraction * total + 1e-9),
        "unknown": math.floor(c.max_unknown_fraction * total + 1e-9),
    }

    def group(categories: tuple[str, ...]) -> int:
        return sum(a for a, cell in zip(amounts, cells, strict=True) if cell.category in categories)

    def can_add(i: int) -> bool:
        cell = cells[i]
        if amounts[i] >= available[i]:
            return False
        if cell.category in cap and group((cell.category,)) + 1 > cap[cell.category]:
            return False
        rule = policy.source_rule(cell.source)
        return not (
            rule.max_fraction < 1
            and sum(
                a for a, other in zip(amounts, cells, strict=True) if other.source == cell.source
            )
            + 1
            > math.floor(rule.max_fraction * total + 1e-9)
        )

    order = sorted(
        range(len(cells)), key=lambda i: (-(split[i] - math.floor(split[i] + 1e-6)), cells[i].key())
    )
    while remainder > 0:
        candidates: list[int] = []
        if group(("fresh_real",)) < need_fresh:
            candidates = [i for i in order if cells[i].category == "fresh_real"]
        elif group(REAL_CATEGORIES) < need_real:
            candidates = [i for i in order if cells[i].category in REAL_CATEGORIES]
        candidates += order
        chosen = next((i for i in candidates if can_add(i)), None)
        if chosen is None:
            break
        amounts[chosen] += 1
        remainder -= 1
    return {cell: amount for cell, amount in zip(cells, amounts, strict=True) if amount > 0}


def _by_group(amounts: dict[Cell, int]) -> dict[str, int]:
    groups: dict[str, int] = {}
    for cell, value in amounts.items():
        groups[cell.category] = groups.get(cell.category, 0) + value
        groups[f"source:{cell.source}"] = groups.get(f"source:{cell.source}", 0) + value
    return groups


def plan(policy: Policy, available: dict[Cell, Pool]) -> Plan:
    """Plan a set under `policy` from the pools in `available` (amounts in the policy's unit).

    Raises:
        ShortfallError: the target cannot be met and the policy says ``on_shortfall = "error"``;
            the message names the binding constraint, what is available and what would work.
    """
    target = policy.target.amount
    unit = policy.target.unit
    eligible = {
        cell: pool
        for cell, pool in sorted(available.items(), key=lambda kv: kv[0].key())
        if pool.units > 0 and policy.source_rule(cell.source).weight > 0
    }
    cells = list(eligible)
    units = [eligible[c].units for c in cells]
    best = _max_total(policy, cells, units, target)
    total = min(target, math.floor(best + 1e-6))
    # Rounding can leave a total the integer split cannot meet exactly: step down until it can.
    amounts: dict[Cell, int] = {}
    while total > 0:
        weights = [policy.source_rule(c.source).weight * eligible[c].units for c in cells]
        scale = sum(weights)
        natural = [total * w / scale for w in weights]
        try:
            split = _closest_split(policy, cells, units, natural, total)
        except CuratorError:
            total -= 1
            continue
        split = _smooth_split(policy, cells, units, natural, total, split)
        amounts = _integer_split(policy, cells, units, split, total)
        if sum(amounts.values()) == total and not check(policy, _by_group(amounts), total):
            break
        # Whole units cannot always reach a fractional optimum (a 0.3 floor of 7 rows needs 3,
        # a 0.1 cap of 7 rows allows 0): a smaller total may fit exactly.
        total = min(total - 1, sum(amounts.values()))
        amounts = {}
    result = Plan(
        unit=unit, target=target, total=max(total, 0), amounts=amounts, available=dict(available)
    )
    if result.total < target:
        result.binding, message, hint = explain_shortfall(policy, available, result.total)
        if policy.output.on_shortfall == "error":
            raise ShortfallError(message, hint)
        result.shrunk = True
        result.notes.append(
            f"shrunk to {result.total:,} {unit} of the target {target:,}: {message}"
        )
    return result


def _what_to_add(binding: str | None) -> str:
    return {
        "min_fresh_real_fraction": "fresh real data",
        "min_real_fraction": "real data",
        "max_synthetic_fraction": "real data",
        "max_unknown_fraction": "real or synthetic data",
        "available": "data",
    }.get(binding or "", "data")


def _conflict(policy: Policy, eligible: dict[Cell, Pool]) -> tuple[str, str, str] | None:
    """Settings that no set of any size can meet together (a floor above what the caps of the
    sources holding that data allow; caps that leave less than the whole set), as (binding,
    message, hint). The hint names the settings and what each would have to be: no target
    fixes a contradiction."""
    c = policy.constraints
    cap = {rule.name: rule.max_fraction for rule in policy.sources}

    def sources_of(categories: tuple[str, ...]) -> list[str]:
        return sorted({cell.source for cell in eligible if cell.category in categories})

    def reach(sources: list[str]) -> float:
        return round(sum(cap.get(name, 1.0) for name in sources), 9)

    def caps_of(sources: list[str]) -> str:
        return ", ".join(f"`sources.{name}.max_fraction = {cap[name]:g}`" for name in sources)

    for name, floor, categories, word in (
        ("min_fresh_real_fraction", c.min_fresh_real_fraction, ("fresh_real",), "fresh real"),
        ("min_real_fraction", c.min_real_fraction, REAL_CATEGORIES, "real"),
    ):
        sources = sources_of(categories)
        if floor <= 0 or not sources or reach(sources) >= floor - 1e-9:
            continue
        most = reach(sources)
        if len(sources) == 1:
            origin = f"comes only from source `{sources[0]}`, capped by {caps_of(sources)}"
            fix = f"raise `sources.{sources[0]}.max_fraction` to at least {floor:g}"
        else:
            origin = f"comes only from sources capped by {caps_of(sources)}, together {most:g}"
            fix = f"raise those caps to add up to at least {floor:g}"
        return (
            name,
            f"`{name} = {floor:g}` cannot be met by a set of any size: {word} data {origin}",
            f"these settings conflict: lower `{name}` to at most {most:g}, or {fix}",
        )
    groups = [
        (sources_of(REAL_CATEGORIES), 1.0, None),
        (sources_of(("synthetic",)), c.max_synthetic_fraction, "max_synthetic_fraction"),
        (sources_of(("unknown",)), c.max_unknown_fraction, "max_unknown_fraction"),
    ]
    room = 0.0
    limits: list[str] = []
    for sources, category_cap, category_name in groups:
        if not sources:
            continue
        by_sources = reach(sources)
        if category_name is not None and category_cap < by_sources:
            room += category_cap
            limits.append(f"`{category_name} = {category_cap:g}`")
        else:
            room += min(by_sources, 1.0)
            if by_sources < 1:
                limits.append(caps_of(sources))
    if room < 1 - 1e-9 and limits:
        return (
            "sources.max_fraction",
            f"the caps leave room for at most {room:g} of a set of any size: {', '.join(limits)}",
            f"these settings conflict: raise them to add up to at least 1 (they add up to {room:g})",
        )
    return None


def explain_shortfall(
    policy: Policy, available: dict[Cell, Pool], best: int
) -> tuple[str, str, str]:
    """The constraint that binds first, a sentence saying why, and the hint: what would work.
    The hint's number is `best`, the largest feasible total; when the named constraint alone
    would allow more, the sentence says how much every constraint together allows."""
    c = policy.constraints
    target = policy.target.amount
    unit = policy.target.unit
    eligible = {
        cell: pool for cell, pool in available.items() if policy.source_rule(cell.source).weight > 0
    }
    conflict = _conflict(policy, eligible)
    if conflict is not None:
        return conflict
    source_cap = {rule.name: rule.max_fraction for rule in policy.sources if rule.max_fraction < 1}

    def capped_amount(categories: tuple[str, ...], total: float) -> float:
        """What of `categories` the per-source caps let into a set of `total`."""
        per_source: dict[str, int] = {}
        for cell, pool in eligible.items():
            if cell.category in categories:
                per_source[cell.source] = per_source.get(cell.source, 0) + pool.units
        return sum(
            min(units, source_cap[source] * total) if source in source_cap else units
            for source, units in per_source.items()
        )

    def floor_limit(categories: tuple[str, ...], fraction: float) -> float:
        """The largest total whose floor `fraction` of `categories` the data and caps allow."""
        low, high = 0.0, float(max(target, 1))
        if capped_amount(categories, high) >= fraction * high:
            return capped_amount(categories, high) / fraction
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (
                (middle, high)
                if capped_amount(categories, middle) >= fraction * middle
                else (low, middle)
            )
        return low

    def caps_clause(categories: tuple[str, ...], total_available: int) -> str:
        allowed = capped_amount(categories, target)
        if allowed >= total_available:
            return ""
        names = sorted(
            {
                cell.source
                for cell in eligible
                if cell.category in categories and cell.source in source_cap
            }
        )
        listed = ", ".join(f"`sources.{n}.max_fraction` {source_cap[n]:g}" for n in names)
        return f", and the caps ({listed}) let at most {math.floor(allowed + 1e-9):,} of them in"

    def amount(*categories: str) -> int:
        return sum(p.units for cell, p in eligible.items() if cell.category in categories)

    fresh = amount("fresh_real")
    real = amount(*REAL_CATEGORIES)
    synthetic = amount("synthetic")
    unknown = amount("unknown")
    unit_word = {"rows": "rows", "bytes": "bytes", "tokens": "tokens"}[unit]
    candidates: list[tuple[float, str, str]] = []
    if c.min_fresh_real_fraction > 0:
        need = math.ceil(c.min_fresh_real_fraction * target)
        candidates.append(
            (
                floor_limit(("fresh_real",), c.min_fresh_real_fraction),
                "min_fresh_real_fraction",
                f"`min_fresh_real_fraction` {c.min_fresh_real_fraction:g} of {target:,} {unit_word} needs "
                f"{need:,} fresh real {unit_word}; {fresh:,} are available"
                + caps_clause(("fresh_real",), fresh),
            )
        )
    if c.min_real_fraction > 0:
        need = math.ceil(c.min_real_fraction * target)
        candidates.append(
            (
                floor_limit(REAL_CATEGORIES, c.min_real_fraction),
                "min_real_fraction",
                f"`min_real_fraction` {c.min_real_fraction:g} of {target:,} {unit_word} needs {need:,} "
                f"real {unit_word}; {real:,} are available" + caps_clause(REAL_CATEGORIES, real),
            )
        )
    everything = real + synthetic + unknown

    def caps_allow(total: float) -> bool:
        return (
            real
            + min(synthetic, c.max_synthetic_fraction * total)
            + min(unknown, c.max_unknown_fraction * total)
            >= total - 1e-9
        )

    if everything < target:
        candidates.append(
            (
                everything,
                "available",
                f"the target is {target:,} {unit_word}; only {everything:,} eligible {unit_word} are in the store",
            )
        )
    if not caps_allow(target):
        low, high = 0.0, float(target)
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if caps_allow(middle) else (low, middle)
        synthetic_cap = c.max_synthetic_fraction * target
        unknown_cap = c.max_unknown_fraction * target
        if synthetic > synthetic_cap:
            name, capped, cap, what = (
                "max_synthetic_fraction",
                "synthetic",
                synthetic_cap,
                c.max_synthetic_fraction,
            )
            others = real + min(unknown, unknown_cap)
            other_kind = "real or unknown"
        else:
            name, capped, cap, what = (
                "max_unknown_fraction",
                "unknown",
                unknown_cap,
                c.max_unknown_fraction,
            )
            others = real + min(synthetic, synthetic_cap)
            other_kind = "real or synthetic"
        candidates.append(
            (
                low,
                name,
                f"`{name}` {what:g} caps {capped} data at {math.floor(cap):,} of {target:,} {unit_word}; "
                f"the other {target - math.floor(cap):,} need {other_kind} {unit_word}, and {others:,.0f} are available",
            )
        )
    # A constraint that alone would allow the whole target is not what binds.
    candidates = [item for item in candidates if item[0] < target - 1e-9]
    if not candidates:
        capped_sources = [rule.name for rule in policy.sources if rule.max_fraction < 1]
        if capped_sources:
            sentence = (
                f"with the per-source `max_fraction` caps ({', '.join(f'`{n}`' for n in capped_sources)}) "
                f"the constraints can be met by at most {best:,} of {target:,} {unit_word}"
            )
            candidates.append((best, "sources.max_fraction", sentence))
        else:
            sentence = f"in whole samples the constraints can be met by at most {best:,} of {target:,} {unit_word}"
            candidates.append((best, "rounding", sentence))
    limit, name, sentence = min(candidates, key=lambda item: item[0])
    if math.floor(limit + 1e-6) > best:
        sentence += (
            f"; with every constraint together, at most {best:,} {unit_word} can be assembled"
        )
    if best > 0:
        hint = (
            f"lower the target to {best:,}, add {_what_to_add(name)}, or set "
            '`on_shortfall = "shrink"`'
        )
    else:
        hint = f"add {_what_to_add(name)}; no smaller target meets every constraint"
    return name, sentence, hint


def check(policy: Policy, amounts: dict[str, int], total: int, tolerance: int = 0) -> list[str]:
    """Which constraints a composition breaks: `amounts` by category and by ``source:NAME``, in
    the policy's unit, `total` the set's size. Bounds are relaxed by `tolerance` units."""
    c = policy.constraints
    problems = []
    fresh = amounts.get("fresh_real", 0)
    real = fresh + amounts.get("used_real", 0)
    if fresh + tolerance < c.min_fresh_real_fraction * total - 1e-9:
        problems.append(f"min_fresh_real_fraction: {fresh} < {c.min_fresh_real_fraction} × {total}")
    if real + tolerance < c.min_real_fraction * total - 1e-9:
        problems.append(f"min_real_fraction: {real} < {c.min_real_fraction} × {total}")
    if amounts.get("synthetic", 0) - tolerance > c.max_synthetic_fraction * total + 1e-9:
        problems.append(
            f"max_synthetic_fraction: {amounts.get('synthetic', 0)} > {c.max_synthetic_fraction} × {total}"
        )
    if amounts.get("unknown", 0) - tolerance > c.max_unknown_fraction * total + 1e-9:
        problems.append(
            f"max_unknown_fraction: {amounts.get('unknown', 0)} > {c.max_unknown_fraction} × {total}"
        )
    for rule in policy.sources:
        got = amounts.get(f"source:{rule.name}", 0)
        if got - tolerance > rule.max_fraction * total + 1e-9:
            problems.append(
                f"sources.{rule.name}.max_fraction: {got} > {rule.max_fraction} × {total}"
            )
    return problems
