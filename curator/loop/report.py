"""`curator report`: a self-contained HTML report of a store, with its plots as PNG and SVG.

What it shows, for every lineage (or the one asked for):

- composition per manifest: fresh real, used real, synthetic by generation, unknown (stacked, in
  the policy's unit), with every policy constraint and its margin;
- the generation-depth distribution of the store;
- the metrics models were registered with (``curator model register --metric``), per
  generation and lineage — the demo's diversity and quality measures;
- for models that generate images, a grid of their samples per generation;
- near-duplicate clusters and contamination by known synthetic samples;
- the Gaussian self-consuming loop (:mod:`curator.loop.simulate`) under each kind of loop.

The HTML embeds every plot (as PNG data), so it opens with no network and no other file; the
same plots are written beside it as PNG and SVG files.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from curator.core.errors import CuratorError
from curator.core.version import __version__
from curator.loop.plots import (
    FRESH_COLOUR,
    FRESH_FLOOR_COLOUR,
    LINEAGE_COLOURS,
    METHOD_COLOURS,
    NO_FLOOR_COLOUR,
    UNKNOWN_COLOUR,
    USED_COLOUR,
    figure_grid,
    lineage_colours,
    lineage_styles,
    new_figure,
    save_figure,
    synthetic_colours,
)
from curator.loop.report_words import (
    Series,
    demo_html,
    metric_label,
    metric_meaning,
    metric_series,
    metric_tables,
    summary_html,
)
from curator.store.catalog import sql_literal

if TYPE_CHECKING:
    from curator.api import Store
    from curator.loop.simulate import SimulationConfig

REPORT_MARKER = ".curator-report"


class ReportError(CuratorError):
    """The report cannot be written as asked."""


@dataclass
class ReportResult:
    """Where the report went: ``index`` is the HTML file; ``figures`` the PNG and SVG files."""

    directory: str
    index: str
    figures: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Section:
    title: str
    figure: str | None = None  # file stem of the figure, if any
    png: bytes | None = None
    caption: str = ""  # HTML above the figure: what it shows
    body: str = ""  # HTML below the figure


def _check_out(out: str) -> str:
    """`out` as an absolute path, after checking it is new, empty or an earlier report."""
    root = os.path.abspath(out)
    if os.path.exists(root):
        if not os.path.isdir(root):
            raise ReportError(f"`{root}` is a file", "pass a directory for the report: --out DIR")
        if os.listdir(root) and not os.path.exists(os.path.join(root, REPORT_MARKER)):
            raise ReportError(
                f"`{root}` is not empty and holds no earlier report",
                "pass a new or empty directory: --out report/",
            )
    return root


def _swap_in(building: str, root: str) -> None:
    """Put the finished report `building` in place of `root` (an earlier report is replaced
    whole, so no stale plot stays); until then the earlier report is untouched."""
    if os.path.exists(root):
        retired = tempfile.mkdtemp(dir=os.path.dirname(root), prefix=".report-old-")
        os.rename(root, os.path.join(retired, "report"))
        os.rename(building, root)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(building, root)


def build_report(
    store: Store,
    out: str | os.PathLike[str],
    *,
    lineage: str | None = None,
    simulation: SimulationConfig | bool = True,
    echo: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write the report of `store` into the directory `out` (new, empty, or an earlier report):
    ``index.html`` with every plot embedded, and each plot as ``NAME.png`` and ``NAME.svg``.

    Args:
        lineage: report this lineage only (default: every lineage of the store).
        simulation: the Gaussian loop to show (``True``: :func:`default_report_simulation`,
            ``False``: none).

    The report is built in a temporary directory beside `out` and moved into place when it is
    whole: a failure leaves an earlier report as it was.

    Raises:
        ReportError: `out` is a file or a directory holding something else.
        CuratorError: `lineage` has no manifest in the store.

    >>> report = build_report(store, "report/")  # doctest: +SKIP
    >>> report.index
    '/…/report/index.html'
    """
    final = _check_out(os.fspath(out))
    say = echo or (lambda _line: None)
    lineages = _lineage_names(store, lineage)
    reports = {name: store.lineage_report(name) for name in lineages}
    models = {m.name: m for m in store.models()}
    os.makedirs(os.path.dirname(final), exist_ok=True)
    root = tempfile.mkdtemp(dir=os.path.dirname(final), prefix=".report-new-")
    try:
        sections = _sections(store, reports, models, simulation, root, say)
        with open(os.path.join(root, REPORT_MARKER), "w", encoding="utf-8") as marker:
            marker.write(datetime.now(UTC).isoformat())
        _write_html(os.path.join(root, "index.html"), _html(store, lineages, sections))
        os.chmod(root, 0o755)
        _swap_in(root, final)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    result = ReportResult(directory=final, index=os.path.join(final, "index.html"))
    for section in sections:
        result.sections.append(section.title)
        if section.figure and section.png is not None:
            result.figures += [
                os.path.join(final, f"{section.figure}.png"),
                os.path.join(final, f"{section.figure}.svg"),
            ]
    say(f"report: {result.index} ({len(result.figures)} figure files)")
    return result


def _sections(
    store: Store,
    reports: dict[str, dict[str, Any]],
    models: dict[str, Any],
    simulation: SimulationConfig | bool,
    root: str,
    say: Callable[[str], None],
) -> list[_Section]:
    """Every section in page order, saying each one's title through `say` as it starts (the
    image grid and the simulation take seconds)."""
    series = metric_series(reports, models)
    deepest = _deepest_generation(store)
    steps: list[tuple[str, Callable[[], _Section]]] = [
        ("summary", lambda: _Section("Summary", body=summary_html(store, reports, series))),
        (
            "about the demo",
            lambda: _Section("About the demo", body=demo_html(store, reports) or ""),
        ),
        ("composition", lambda: _composition_section(reports, deepest, root)),
        ("generation depth", lambda: _generation_section(store, reports, deepest, root)),
        ("metrics", lambda: _metrics_section(reports, series, root)),
        ("images", lambda: _images_section(store, reports, models, root)),
        ("near-duplicate clusters", lambda: _duplicates_section(store, root)),
        ("contamination", lambda: _contamination_section(store, deepest, root)),
    ]
    if simulation is not False:
        config = None if simulation is True else simulation
        steps.append(("the Gaussian loop", lambda: _simulation_section(config, root)))
    sections = []
    for i, (step, make) in enumerate(steps, 1):
        say(f"report: {i}/{len(steps)} {step}")
        section = make()
        if section.body or section.figure:  # "About the demo" only for the demo's store
            sections.append(section)
    return sections


def _lineage_names(store: Store, lineage: str | None) -> list[str]:
    if lineage is not None:
        return [lineage]
    rows = store.sql(
        "SELECT lineage, min(created_at) AS first FROM manifests GROUP BY 1 ORDER BY 2, 1"
    ).to_pylist()
    return [r["lineage"] for r in rows]


def _write_html(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


# -- sections --------------------------------------------------------------------------------


def _deepest_generation(store: Store) -> int:
    rows = store.sql("SELECT max(generation) AS g FROM composition").to_pylist()
    return max(int(rows[0]["g"] or 1), 1) if rows else 1


def _composition_section(reports: dict[str, dict[str, Any]], deepest: int, root: str) -> _Section:
    section = _Section("Composition per manifest")
    if not reports:
        section.body = (
            "<p>No manifest yet. Assemble a training set: "
            "<code>curator assemble --policy POLICY.toml --out DIR</code>.</p>"
        )
        return section

    generations = sorted(
        {
            int(g)
            for report in reports.values()
            for entry in report["manifests"]
            for g in entry["synthetic_by_generation"]
        }
    )
    colours = synthetic_colours(generations, deepest)
    figure, axes = figure_grid(len(reports))
    for ax, (name, report) in zip(axes, reports.items(), strict=True):
        entries = report["manifests"]
        x = list(range(1, len(entries) + 1))
        layers = [
            ([e["fractions"]["fresh_real"] for e in entries], "fresh real", FRESH_COLOUR),
            (
                [e["fractions"]["real"] - e["fractions"]["fresh_real"] for e in entries],
                "used real",
                USED_COLOUR,
            ),
            *(
                (
                    [e["synthetic_by_generation"].get(str(g), 0.0) for e in entries],
                    f"synthetic, gen {g}",
                    colours[g],
                )
                for g in generations
            ),
            ([e["fractions"]["unknown"] for e in entries], "unknown", UNKNOWN_COLOUR),
        ]
        bottom = [0.0] * len(entries)
        for values, label, colour in layers:
            ax.bar(x, values, bottom=bottom, label=label, color=colour, width=0.8)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_title(f"lineage {name}", color=lineage_colours(list(reports))[name])
        ax.set_xlabel("manifest (in order)")
        ax.set_ylabel(f"share of the set ({entries[0]['unit']})")
        ax.set_ylim(0, 1)
        ax.set_xticks(x)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    section.figure = "composition"
    section.png = save_figure(figure, root, section.figure)
    rows = []
    for name, report in reports.items():
        for e in report["manifests"]:
            held = [c for c in e["constraints"] if c["held"]]
            rows.append(
                (
                    name,
                    e["sequence"],
                    e["name"] or e["manifest_id"],
                    f"{e['units']:,} {e['unit']}",
                    _pct(e["fractions"]["fresh_real"]),
                    _pct(e["fractions"]["real"]),
                    _pct(e["fractions"]["synthetic"]),
                    _pct(e["fractions"]["unknown"]),
                    "-" if e["deepest_generation"] is None else e["deepest_generation"],
                    ", ".join(e["models"]) or "-",
                    f"{len(held)}/{len(e['constraints'])} held"
                    + "".join(f"; {c['name']} VIOLATED" for c in e["constraints"] if not c["held"]),
                )
            )
    section.body = _table(
        [
            "lineage", "#", "manifest", "size", "fresh real", "real", "synthetic", "unknown",
            "deepest gen", "models trained on it", "constraints",
        ],
        rows,
    )  # fmt: skip
    return section


def _generation_section(
    store: Store, reports: dict[str, dict[str, Any]], deepest: int, root: str
) -> _Section:
    from matplotlib.ticker import MaxNLocator

    section = _Section("Generation depth")
    # The catalog's per-shard composition, not a scan of the shards.
    rows = store.sql(
        "SELECT origin, generation, sum(rows)::BIGINT AS n FROM composition "
        "GROUP BY ALL ORDER BY 1, 2"
    ).to_pylist()
    if not rows:
        section.body = "<p>The store holds no sample yet: <code>curator ingest</code>.</p>"
        return section
    counts: dict[int | None, int] = {}  # by generation; None: unknown
    for r in rows:
        counts[r["generation"]] = counts.get(r["generation"], 0) + r["n"]
    generations = sorted(g for g in counts if g is not None)
    colours = synthetic_colours([g for g in generations if g > 0], deepest)
    bars = [
        (
            "gen 0 (real)" if g == 0 else f"gen {g}",
            counts[g],
            FRESH_COLOUR if g == 0 else colours[g],
        )
        for g in generations
    ]
    if None in counts:
        bars.append(("unknown", counts[None], UNKNOWN_COLOUR))
    panels = 2 if reports else 1
    figure, axes = new_figure(1, panels, (6 * panels, 3.6))
    ax = axes[0][0]
    ax.bar([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    ax.set_title("samples in the store by generation")
    ax.set_ylabel("samples")
    if reports:
        ax = axes[0][1]
        # Lineages that share a depth would hide each other: shift each a little. The colour
        # says the lineage's meaning; the marker and line its family (text, digits, …).
        by_lineage = lineage_colours(list(reports))
        styles = lineage_styles(list(reports))
        spread = 0.12 if len(reports) > 1 else 0.0
        for i, (name, report) in enumerate(reports.items()):
            offset = spread * (i / (len(reports) - 1) - 0.5) if len(reports) > 1 else 0.0
            points = [(e["sequence"], _mean_generation(e)) for e in report["manifests"]]
            points = [(x, y) for x, y in points if y is not None]
            marker, line = styles[name]
            ax.plot(
                [x + offset for x, _ in points],
                [y for _, y in points],
                marker=marker,
                linestyle=line,
                color=by_lineage[name],
                label=name,
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("mean generation of each manifest's labelled samples")
        ax.set_xlabel("manifest (in order)")
        ax.set_ylabel("generation")
        ax.legend(fontsize="small")
    figure.tight_layout()
    section.figure = "generations"
    section.png = save_figure(figure, root, section.figure)
    section.body = _table(
        ["origin", "generation", "samples"],
        [
            (r["origin"], "-" if r["generation"] is None else r["generation"], f"{r['n']:,}")
            for r in rows
        ],
    )
    return section


def _mean_generation(entry: dict[str, Any]) -> float | None:
    """The mean generation of a manifest's real and synthetic samples (by its unit); ``None``
    when it holds only unknown ones."""
    real = entry["fractions"]["real"]
    synthetic = entry["synthetic_by_generation"]
    known = real + sum(synthetic.values())
    if known <= 0:
        return None
    return sum(int(g) * share for g, share in synthetic.items()) / known


def _metrics_section(reports: dict[str, dict[str, Any]], series: Series, root: str) -> _Section:
    from matplotlib.ticker import MaxNLocator

    section = _Section("Model metrics per generation")
    if not series:
        section.body = (
            "<p>No model was registered with metrics. Record what each generation's model "
            "scored: <code>curator model register NAME --trained-on MANIFEST "
            "--metric perplexity=41.2</code>.</p>"
        )
        return section
    colours = lineage_colours(list(reports))
    styles = lineage_styles(list(reports))
    figure, axes = figure_grid(len(series), width=5.5, height=3.6)
    for ax, (metric, by_lineage) in zip(axes, series.items(), strict=True):
        for name, points in by_lineage.items():
            marker, line = styles[name]
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker=marker,
                linestyle=line,
                color=colours[name],
                label=name,
            )
        meaning = metric_meaning(metric)
        ax.set_title(f"{meaning.words}\n{metric} ({meaning.direction})", fontsize="medium")
        ax.set_ylabel(meaning.unit, fontsize="small")
        ax.set_xlabel("generation (manifest in its lineage)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    figure.tight_layout()
    section.figure = "metrics"
    section.png = save_figure(figure, root, section.figure)
    section.body = (
        "<p>What each model scored, by the generation it belongs to:</p><ul>"
        + "".join(f"<li>{html.escape(metric_label(m))}</li>" for m in series)
        + "</ul>"
        + metric_tables(series)
    )
    return section


def _images_section(
    store: Store, reports: dict[str, dict[str, Any]], models: dict[str, Any], root: str
) -> _Section:
    """A grid per lineage whose models generated images: a row of the real images its first
    manifest used, then a row of each generation's samples."""
    section = _Section("Generated images per generation")
    has_images = "image" in {
        r["column_name"]
        for r in store.sql("SELECT column_name FROM (DESCRIBE samples)").to_pylist()
    }
    grids: list[tuple[str, list[tuple[str, list[Any]]]]] = []
    if has_images:
        for name, report in reports.items():
            rows: list[tuple[str, list[Any]]] = []
            entries = report["manifests"]
            if entries:
                real = (
                    store.sql(
                        "SELECT s.image FROM usage u JOIN samples s USING (sample_id) "
                        f"WHERE u.manifest_id = {sql_literal(entries[0]['manifest_id'])} "
                        "AND u.origin = 'real' AND s.image IS NOT NULL ORDER BY u.sample_id LIMIT 12"
                    )
                    .column(0)
                    .to_pylist()
                )
                if real:
                    rows.append((f"{name}: real (gen 0)", real))
            for e in entries:
                for model in e["models"]:
                    made = (
                        store.sql(
                            f"SELECT image FROM samples WHERE model = {sql_literal(model)} "
                            "AND image IS NOT NULL ORDER BY sample_id LIMIT 12"
                        )
                        .column(0)
                        .to_pylist()
                    )
                    if made:
                        rows.append((f"{model} (gen {models[model].generation + 1})", made))
            if len(rows) > 1:
                grids.append((name, rows))
    if not grids:
        section.body = "<p>No model of these lineages generated images.</p>"
        return section
    total_rows = sum(len(rows) for _, rows in grids)
    columns = max(len(images) for _, rows in grids for _, images in rows)
    figure, axes = new_figure(total_rows, columns, (0.75 * columns, 0.75 * total_rows))
    # The axes fill the figure: no title or margin above the first row (a figure title left a
    # blank band there, since without a layout engine the axes keep matplotlib's 12 % top margin).
    figure.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0.08, hspace=0.08)
    row_index = 0
    for _name, rows in grids:
        for label, images in rows:
            for column in range(columns):
                ax = axes[row_index][column]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if column < len(images):
                    ax.imshow(_decode(images[column]), cmap="gray_r", interpolation="nearest")
            axes[row_index][0].set_ylabel(
                label, rotation=0, ha="right", va="center", fontsize="small"
            )
            row_index += 1
    section.figure = "images"
    section.png = save_figure(figure, root, section.figure)
    section.caption = (
        "<p>Per lineage (" + ", ".join(html.escape(n) for n, _ in grids) + "): a row of the real "
        "images its first manifest trained on, then a row of samples of each generation's model "
        f"(the first {columns} by sample id).</p>"
    )
    return section


def _decode(data: bytes) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"))


def _duplicates_section(store: Store, root: str) -> _Section:
    section = _Section("Near-duplicate clusters")
    rows = store.sql(
        "SELECT method, cluster_id, any_value(cluster_size) AS size FROM duplicates "
        "JOIN samples USING (sample_id) GROUP BY 1, 2"
    ).to_pylist()
    if not rows:
        section.body = (
            "<p>No near-duplicate cluster is recorded. Find them with <code>curator dedup</code>."
            "</p>"
        )
        return section
    by_origin = store.sql(
        "SELECT d.method, s.origin, count(*) AS n, count(*) FILTER (WHERE NOT d.kept) AS dropped "
        "FROM duplicates d JOIN samples s USING (sample_id) GROUP BY ALL ORDER BY 1, 2"
    ).to_pylist()
    methods = sorted({r["method"] for r in rows})
    figure, axes = new_figure(1, 2, (11, 3.6))
    ax = axes[0][0]
    largest = max(r["size"] for r in rows)
    bins = list(range(2, largest + 2))
    method_colours = [METHOD_COLOURS[i % len(METHOD_COLOURS)] for i in range(len(methods))]
    ax.hist(
        [[r["size"] for r in rows if r["method"] == m] for m in methods],
        bins=bins,
        label=methods,
        color=method_colours,
        align="left",
    )
    ax.set_title("cluster sizes")
    ax.set_xlabel("samples in the cluster")
    ax.set_ylabel("clusters")
    ax.legend(fontsize="small")
    ax = axes[0][1]
    origins = ["real", "synthetic", "unknown"]
    for offset, method in enumerate(methods):
        counts = [
            sum(r["n"] for r in by_origin if r["method"] == method and r["origin"] == o)
            for o in origins
        ]
        ax.bar(
            [i + offset * 0.8 / len(methods) for i in range(len(origins))],
            counts,
            width=0.8 / len(methods),
            color=method_colours[offset],
            label=method,
        )
    ax.set_xticks(range(len(origins)), origins)
    ax.set_title("samples in a cluster, by origin")
    ax.legend(fontsize="small")
    figure.tight_layout()
    section.figure = "duplicates"
    section.png = save_figure(figure, root, section.figure)
    in_clusters = sum(r["n"] for r in by_origin)
    total = store.sql("SELECT count(*) AS n FROM samples").to_pylist()[0]["n"]
    section.caption = (
        f"<p>What <code>curator dedup</code> found over the store's {total:,} live samples "
        f"(methods run: {html.escape(', '.join(methods))}; <code>minhash</code> compares texts by "
        "their word shingles, <code>phash</code> images by their perceptual hash): "
        f"{len(rows):,} clusters of near-copies holding {in_clusters:,} samples. In each cluster "
        "one member is kept (real before synthetic, then lower generation, higher confidence, "
        "earlier); the others, “not kept”, are what an assembly that removes near-duplicates "
        "leaves out.</p>"
    )
    section.body = _table(
        ["method", "origin", "samples in a cluster", "not kept"],
        [(r["method"], r["origin"], f"{r['n']:,}", f"{r['dropped']:,}") for r in by_origin],
    )
    return section


def _contamination_section(store: Store, deepest: int, root: str) -> _Section:
    section = _Section("Contamination by known synthetic samples")
    sources = [
        r["source"]
        for r in store.sql(
            "SELECT source FROM samples GROUP BY 1 "
            "HAVING count(*) FILTER (WHERE origin <> 'synthetic' OR origin_evidence NOT IN "
            "('declared', 'model-lineage')) > 0 ORDER BY 1"
        ).to_pylist()
    ]
    results = [store.contamination(source) for source in sources]
    if not results or not any(r["dedup_has_run"] for r in results):
        section.body = (
            "<p>Contamination needs near-duplicate clusters: run <code>curator dedup</code>.</p>"
        )
        return section
    generations = sorted(
        {row["generation"] for r in results for row in r["by_generation_and_model"]}
    )
    colours = synthetic_colours(generations, deepest)
    figure, axes = new_figure(1, 1, (max(6.0, 0.9 * len(results) + 2), 3.6))
    ax = axes[0][0]
    bottom = [0.0] * len(results)
    for g in generations:
        values = [
            sum(row["fraction"] for row in r["by_generation_and_model"] if row["generation"] == g)
            for r in results
        ]
        ax.bar(range(len(results)), values, bottom=bottom, color=colours[g], label=f"gen {g}")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(range(len(results)), [r["source"] for r in results], rotation=30, ha="right")
    ax.set_ylabel("share near-duplicating synthetic samples")
    ax.set_title("contamination by source (stacked by the copy's generation)")
    if generations:
        ax.legend(fontsize="small")
    figure.tight_layout()
    section.figure = "contamination"
    section.png = save_figure(figure, root, section.figure)
    section.caption = (
        f"<p>Covers the {len(results)} sources holding samples not known to be synthetic by "
        "declaration or model lineage: for each, the share of its samples that are in a "
        "near-duplicate cluster with a synthetic sample of another source (contaminated), "
        "stacked by the generation of that synthetic copy. A high share means the source "
        "repeats generated content.</p>"
    )
    section.body = _table(
        ["source", "samples", "contaminated", "share", "by generation and model"],
        [
            (
                r["source"],
                f"{r['samples']:,}",
                f"{r['contaminated']:,}",
                _pct(r["fraction"]),
                "; ".join(
                    f"gen {row['generation']} {row['model']}: {row['samples']:,}"
                    for row in r["by_generation_and_model"]
                )
                or "-",
            )
            for r in results
        ],
    )
    return section


def default_report_simulation() -> SimulationConfig:
    """The Gaussian loop a report shows unless told otherwise: maximum-likelihood fits to 20
    samples per generation, where the fully synthetic loop visibly collapses
    (E tr Σ_k = D (19/20)^k) and fresh real data holds it."""
    from curator.loop.simulate import SimulationConfig

    return SimulationConfig(fit="mle", n_real=20, n_synthetic=20, generations=40, reps=1000)


def _simulation_section(config: SimulationConfig | None, root: str) -> _Section:
    from curator.loop.simulate import compare_loops, plot_simulation

    base = config or default_report_simulation()
    results = compare_loops(base)
    section = _Section("The Gaussian self-consuming loop")
    path = os.path.join(root, "simulation.png")
    # The fully synthetic loop means what a no-floor lineage means; the fresh loop a fresh-floor one.
    colours = {
        "fully-synthetic": NO_FLOOR_COLOUR,
        "fresh": FRESH_FLOOR_COLOUR,
        "augmentation": LINEAGE_COLOURS[0],
    }
    plot_simulation(results, path, colours=colours)
    plot_simulation(results, os.path.join(root, "simulation.svg"), colours=colours)
    with open(path, "rb") as handle:
        section.png = handle.read()
    section.figure = "simulation"
    parameters = {k: v for k, v in asdict(base).items() if k != "loop"}
    rows = []
    for result in results:
        last = result.rows[-1]
        rows.append(
            (
                result.config.loop,
                last["generation"],
                f"{last['mean_sq_error_mean']:.4g}",
                f"{last['cov_trace_mean']:.4g}",
                f"{last['w2_sq_mean']:.4g}",
            )
        )
    section.body = (
        "<p>N(0, I) is fitted, generation after generation, to samples of the previous fit "
        "(see <code>curator simulate --help</code>); parameters: "
        + html.escape(", ".join(f"{k}={v}" for k, v in parameters.items()))
        + ". The last generation:</p>"
        + _table(["loop", "generation", "E‖μ‖²", "E tr Σ", "E W₂²"], rows)
    )
    return section


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .meta { color: #666; } code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _html(store: Store, lineages: list[str], sections: list[_Section]) -> str:
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>curator report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>curator report</h1>",
        f'<p class="meta">store <code>{html.escape(store.root)}</code>; lineages: '
        + (", ".join(html.escape(n) for n in lineages) or "none")
        + f"; written {datetime.now(UTC).isoformat(timespec='seconds')} by curator "
        f"{__version__}</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append(section.caption)
        if section.png is not None and section.figure:
            data = base64.b64encode(section.png).decode("ascii")
            parts.append(
                f'<p><img alt="{html.escape(section.title)}" src="data:image/png;base64,{data}">'
                f'<br><a href="{section.figure}.png">{section.figure}.png</a> · '
                f'<a href="{section.figure}.svg">{section.figure}.svg</a></p>'
            )
        parts.append(section.body)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
