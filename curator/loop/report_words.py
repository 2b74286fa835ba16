"""What a report says in words and tables: the metrics' meanings, and the summary that opens the page
(with, for the demo's store, what the demo did), each number computed from the store."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curator.loop.demo_names import DIGITS_SOURCE, LOOPS, TEXT_SOURCE
from curator.store.catalog import sql_literal

if TYPE_CHECKING:
    from curator.api import Store


@dataclass(frozen=True)
class MetricMeaning:
    """What a registered metric measures, in words, its unit, and which way is better
    (``1``: higher, ``-1``: lower, ``0``: not known)."""

    words: str
    unit: str
    better: int = 0

    @property
    def direction(self) -> str:
        return {1: "higher is better", -1: "lower is better"}.get(self.better, "direction unknown")


#: The metrics the report names in words: the demo's, and common ones.
METRIC_MEANINGS: dict[str, MetricMeaning] = {
    "vocabulary": MetricMeaning("distinct words in the model's samples", "words", 1),
    "distinct_bigrams": MetricMeaning("distinct word pairs in the model's samples", "bigrams", 1),
    "perplexity": MetricMeaning("perplexity of held-out real text under the model", "per word", -1),
    "frechet_distance": MetricMeaning(
        "Fréchet distance of the samples to held-out real digits", "squared pixel units", -1
    ),
    "pixel_variance": MetricMeaning(
        "pixel variance of the samples (sum over 64 pixels)", "intensity², 0–16 scale", 1
    ),
    "accuracy": MetricMeaning("accuracy", "fraction", 1),
    "loss": MetricMeaning("loss", "per token", -1),
}


def metric_meaning(name: str) -> MetricMeaning:
    """The meaning of the metric `name`; a metric not in `METRIC_MEANINGS` is named by itself."""
    return METRIC_MEANINGS.get(name, MetricMeaning(name, "as registered"))


def metric_label(name: str) -> str:
    """``'vocabulary: distinct words in the model's samples (words; higher is better)'``."""
    meaning = metric_meaning(name)
    words = "" if meaning.words == name else f": {meaning.words}"
    return f"{name}{words} ({meaning.unit}; {meaning.direction})"


def loop_of(lineage: str) -> str | None:
    """The demo loop a lineage runs (``'no-floor'``, ``'fresh-floor'``) by its name, if any."""
    return next((loop for loop in LOOPS if lineage.endswith(f"-{loop}")), None)


#: metric -> lineage -> [(generation, value)], generation being the manifest's place in its lineage.
Series = dict[str, dict[str, list[tuple[int, float]]]]


def metric_series(reports: dict[str, dict[str, Any]], models: dict[str, Any]) -> Series:
    series: Series = {}
    for name, report in reports.items():
        for e in report["manifests"]:
            for model_name in e["models"]:
                for metric, value in models[model_name].metrics.items():
                    series.setdefault(metric, {}).setdefault(name, []).append(
                        (e["sequence"], value)
                    )
    for by_lineage in series.values():
        for points in by_lineage.values():
            points.sort()
    # The metrics the report knows first, in its order (the demo's: diversity, then quality).
    known = list(METRIC_MEANINGS)
    return dict(
        sorted(series.items(), key=lambda m: (known.index(m[0]) if m[0] in known else 99, m[0]))
    )


def number(value: float) -> str:
    """``3,370``, ``1,647.6``, ``0.75``: whole numbers whole, large ones to a tenth, small ones
    to four significant digits."""
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"


def _demo_pairs(reports: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(family, no-floor lineage, fresh-floor lineage)`` for each family (``text``,
    ``digits``) whose two demo loops are both reported."""
    pairs = []
    for name in reports:
        if loop_of(name) == "no-floor":
            family = name[: -len("-no-floor")]
            if f"{family}-fresh-floor" in reports:
                pairs.append((family, name, f"{family}-fresh-floor"))
    return pairs


def _floor_of(report: dict[str, Any]) -> float:
    """The largest ``min_fresh_real_fraction`` of a lineage's manifests (0 when none)."""
    return max(
        (
            c["bound"]
            for e in report["manifests"]
            for c in e["constraints"]
            if c["name"] == "min_fresh_real_fraction"
        ),
        default=0.0,
    )


def _change(first: float, last: float) -> str:
    return "no change" if first == 0 else f"{100 * (last - first) / first:+.1f} %"


def summary_html(store: Store, reports: dict[str, dict[str, Any]], series: Series) -> str:
    """Opens the page: what the store holds, its lineages and metrics, and — for the demo's
    paired loops — what the metrics say, in numbers computed from the data."""
    rows = store.sql(
        "SELECT origin, min(generation) AS lo, max(generation) AS hi, sum(rows)::BIGINT AS n "
        "FROM composition GROUP BY 1"
    ).to_pylist()
    by_origin = {r["origin"]: r for r in rows}
    total = sum(r["n"] for r in rows)
    parts = []
    if total:
        held = [f"{by_origin['real']['n']:,} real"] if "real" in by_origin else []
        if "synthetic" in by_origin:
            synthetic = by_origin["synthetic"]
            depth = (
                f"generation {synthetic['lo']}"
                if synthetic["lo"] == synthetic["hi"]
                else f"generations {synthetic['lo']}–{synthetic['hi']}"
            )
            held.append(f"{synthetic['n']:,} synthetic ({depth})")
        if "unknown" in by_origin:
            held.append(f"{by_origin['unknown']['n']:,} of unknown origin")
        parts.append(f"The store holds {total:,} samples: {', '.join(held)}.")
    else:
        parts.append("The store holds no sample yet.")
    if reports:
        parts.append(
            f"{len(reports)} lineage{'s' if len(reports) > 1 else ''}: "
            + ", ".join(
                f"<code>{html.escape(n)}</code> ({len(r['manifests'])} generations)"
                for n, r in reports.items()
            )
            + "."
        )
    else:
        parts.append("No lineage: nothing was assembled yet.")
    if series:
        parts.append(
            f"Models were registered with {len(series)} metric{'s' if len(series) > 1 else ''}: "
            + ", ".join(html.escape(m) for m in series)
            + "."
        )
    body = [f"<p>{' '.join(parts)}</p>"]
    paired: set[str] = set()
    for family, no_floor, fresh_floor in _demo_pairs(reports):
        paired |= {no_floor, fresh_floor}
        body.append(_pair_summary(family, no_floor, fresh_floor, reports, series))
    others = [
        (metric, name, points)
        for metric, by_lineage in series.items()
        for name, points in by_lineage.items()
        if name not in paired
    ]
    if others:
        body.append(
            "<p>Each metric, from the first generation to the last:</p><ul>"
            + "".join(
                f"<li><code>{html.escape(name)}</code>, {html.escape(metric_label(metric))}: "
                f"{number(points[0][1])} at generation {points[0][0]} → "
                f"{number(points[-1][1])} at generation {points[-1][0]} "
                f"({_change(points[0][1], points[-1][1])})</li>"
                for metric, name, points in others
            )
            + "</ul>"
        )
    return "\n".join(body)


def _pair_summary(
    family: str,
    no_floor: str,
    fresh_floor: str,
    reports: dict[str, dict[str, Any]],
    series: Series,
) -> str:
    floor = _floor_of(reports[fresh_floor])
    metrics = [m for m, by in series.items() if no_floor in by and fresh_floor in by]
    items = []
    worse = 0  # metrics on which the no-floor loop ends worse than the fresh-floor one
    for metric in metrics:
        bare, held = series[metric][no_floor], series[metric][fresh_floor]
        better = metric_meaning(metric).better
        if better and (bare[-1][1] - held[-1][1]) * better < 0:
            worse += 1
        spread = max(abs(v - held[0][1]) / held[0][1] for _, v in held) if held[0][1] else 0.0
        items.append(
            f"<li>{html.escape(metric_label(metric))}: without a floor "
            f"{number(bare[0][1])} → {number(bare[-1][1])} over {len(bare)} generations "
            f"({_change(bare[0][1], bare[-1][1])}); with the floor "
            f"{number(held[0][1])} → {number(held[-1][1])}, every generation within "
            f"{100 * spread:.1f} % of its first</li>"
        )
    generations = len(reports[no_floor]["manifests"])
    return (
        f"<p><b>{html.escape(family)}</b>: <code>{html.escape(no_floor)}</code> trains every "
        "generation after the first only on the previous one's output; "
        f"<code>{html.escape(fresh_floor)}</code> keeps at least {100 * floor:.0f} % fresh real "
        f"data in each. After {generations} generations the loop without a floor is worse "
        f"than the one with it on {worse} of {len(metrics)} metrics"
        + (
            ": without fresh real data the models degrade, with it they hold."
            if metrics and worse == len(metrics)
            else "."
        )
        + "</p><ul>"
        + "".join(items)
        + "</ul>"
    )


def demo_html(store: Store, reports: dict[str, dict[str, Any]]) -> str | None:
    """What ``curator demo`` did, for a report of its store (the lineages name its loops);
    untitled, so left out, for any other store."""
    families = {name[: -len(loop) - 1]: name for name in reports if (loop := loop_of(name))}
    if not families:
        return None
    real = {
        r["source"]: r["n"]
        for r in store.sql(
            "SELECT source, sum(rows)::BIGINT AS n FROM composition "
            f"WHERE source IN ({sql_literal(TEXT_SOURCE)}, {sql_literal(DIGITS_SOURCE)}) "
            "GROUP BY 1"
        ).to_pylist()
    }
    crawl = store.sql(
        "SELECT sum(rows)::BIGINT AS n FROM composition WHERE source = 'crawl'"
    ).to_pylist()[0]["n"]
    floors = [_floor_of(r) for n, r in reports.items() if loop_of(n) == "fresh-floor"]
    floor = f"{100 * max(floors):.0f} %" if floors else "a share of"
    sizes = ", ".join(
        f"{reports[name]['manifests'][0]['units']:,} {reports[name]['manifests'][0]['unit']} "
        f"for {html.escape(family)}"
        for family, name in families.items()
        if reports[name]["manifests"]
    )
    data = []
    if TEXT_SOURCE in real:
        data.append(
            f"text written by people that ships with Python: {real[TEXT_SOURCE]:,} paragraphs "
            "of the standard library's docstrings and the language documentation "
            f"(source <code>{TEXT_SOURCE}</code>)"
        )
    if DIGITS_SOURCE in real:
        data.append(
            f"{real[DIGITS_SOURCE]:,} of the handwritten digits scikit-learn ships, as 8 × 8 "
            f"images (source <code>{DIGITS_SOURCE}</code>)"
        )
    return (
        "<p><code>curator demo</code> runs the self-consuming loop — each generation's model "
        "trained on data that includes earlier models' output — with curator's own operations, "
        "offline.</p><ul>"
        f"<li><b>Real data every machine has</b>: {'; and '.join(data) or 'none found'}, "
        "ingested as real. More of it is held out and never enters the store: every model is "
        "evaluated on it.</li>"
        "<li><b>Two lineages per modality, side by side.</b> <code>no-floor</code>: generation 1 "
        "trains on real data, every later generation only on the previous generation's output "
        "(the fully synthetic loop). <code>fresh-floor</code>: from generation 2 on, every "
        f"training set holds at least {floor} fresh real data (real samples no earlier manifest "
        "of the lineage used: the policy's <code>min_fresh_real_fraction</code>); the rest is "
        "the previous generation's output. The policies are in the demo's "
        "<code>policies/</code> directory.</li>"
        f"<li><b>Each generation</b>: <code>assemble</code> a training set ({sizes}) under its "
        "policy; train a small real model on its shards (a word bigram model for text, a "
        "10-component Gaussian mixture for digits); evaluate it on the held-out real data; "
        "<code>model register</code> it with its metrics; ingest its samples with "
        "<code>--generated-by</code>, so they carry their generation without anyone computing "
        "it.</li>"
        "<li><b>Measures.</b> Text: the diversity of the model's samples (distinct words and "
        "distinct word pairs: higher is better) and their quality (perplexity of the held-out "
        "real text under the model: lower is better). Digits: the Fréchet distance between the "
        "samples and the held-out digits (lower is better) and the samples' pixel variance "
        "(their variety: higher is better).</li>"
        + (
            f"<li><b>A crawl of unknown origin</b>: {crawl:,} texts, near-copies of real "
            "paragraphs and of the no-floor loop's generated texts, goes through "
            "<code>dedup</code>, <code>infer</code> (near-duplicate propagation labels it) and "
            "<code>contamination</code>: the last two sections.</li>"
            if crawl
            else ""
        )
        + "</ul><p>How to read it: where the magenta <code>no-floor</code> lines drift away from "
        "the green <code>fresh-floor</code> ones, the model is collapsing; the green ones "
        "staying flat is the fresh-real floor at work.</p>"
    )


def _metric_groups(series: Series) -> list[tuple[list[str], list[str]]]:
    """Lineages that were scored on the same metrics, with those metrics: one table each."""
    by_lineage: dict[str, list[str]] = {}
    for metric, lineages in series.items():
        for name in lineages:
            by_lineage.setdefault(name, []).append(metric)
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, metrics in by_lineage.items():
        groups.setdefault(tuple(metrics), []).append(name)
    return [(lineages, list(metrics)) for metrics, lineages in groups.items()]


def _metrics_table(series: Series, group: tuple[list[str], list[str]]) -> str:
    """One row per generation; a column per metric and lineage, the lineages of a metric side by
    side under it."""
    lineages, metrics = group
    generations = sorted({g for m in metrics for n in lineages for g, _ in series[m][n]})
    head = (
        '<tr><th rowspan="2">generation</th>'
        + "".join(f'<th colspan="{len(lineages)}">{html.escape(metric)}</th>' for metric in metrics)
        + "</tr><tr>"
        + "".join(f"<th>{html.escape(name)}</th>" for _ in metrics for name in lineages)
        + "</tr>"
    )
    rows = []
    for generation in generations:
        cells = [str(generation)]
        for metric in metrics:
            for name in lineages:
                values = [v for g, v in series[metric][name] if g == generation]
                cells.append(", ".join(number(v) for v in values) or "-")
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f'<table class="metrics"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def metric_tables(series: Series) -> str:
    """The metrics as HTML tables, one per group of lineages scored on the same metrics: a row
    per generation, a column per metric and lineage."""
    return "".join(_metrics_table(series, group) for group in _metric_groups(series))
