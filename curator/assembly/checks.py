"""Constraint checks: the composition of the set and of each output shard, each constraint with
its bound, what was achieved and its margin, and the refusal to write a set that breaks one
(invariant 4). Also how pools and constraints are named in printed output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curator.assembly.layout import shard_path
from curator.assembly.planner import CATEGORIES
from curator.core.errors import CuratorError

if TYPE_CHECKING:
    import duckdb

    from curator.assembly.policy import Policy


class AssemblyError(CuratorError):
    """An assembly that would break a constraint of its policy; nothing was written."""


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


_BREAKDOWNS = {
    "by_origin": "CASE WHEN category IN ('fresh_real', 'used_real') THEN 'real' ELSE category END",
    "by_generation": "CASE WHEN category IN ('fresh_real', 'used_real') THEN '0' WHEN category = 'synthetic' THEN generation::VARCHAR ELSE 'unknown' END",
    "by_source": "source",
    "by_freshness": "CASE category WHEN 'fresh_real' THEN 'fresh_real' WHEN 'used_real' THEN 'used_real' ELSE 'not_real' END",
}


def compositions(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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


def constraint_reports(
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


def require_held(
    constraints: list[dict[str, Any]], shards: list[dict[str, Any]], unit: str
) -> None:
    """Invariant 4: a set that breaks a constraint, in total or (bytes, tokens) in a shard, is
    not written. The shards of a rows target are only reported: their quotas come from an
    integer program, except with very many shards, where :func:`_greedy_quotas` can miss a share
    by up to two rows (and the manifest says so)."""
    broken = [("the set", item) for item in constraints if not item["held"]]
    if unit != "rows":
        broken += [
            (f"output shard {index} (`{shard_path(index, len(shards), 'parquet')}`)", item)
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
