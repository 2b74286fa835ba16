"""The report's plots: one colour per meaning in every chart, figures drawn without pyplot, and
saving each as PNG and SVG."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from curator.loop.demo_names import LOOPS
from curator.loop.report_words import loop_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: One colour per meaning, in every chart: real data in blues (fresh real dark, used real light),
#: synthetic generations in a warm ramp (the same generation the same colour everywhere), unknown
#: in grey. Lineages get colours outside those: the demo's loops by their meaning (every
#: ``*-no-floor`` lineage magenta, every ``*-fresh-floor`` one green, and the simulation's fully
#: synthetic and fresh loops likewise), any other lineage the next colour of `LINEAGE_COLOURS`.
FRESH_COLOUR = "#2b8cbe"
USED_COLOUR = "#a6bddb"
UNKNOWN_COLOUR = "#bdbdbd"
NO_FLOOR_COLOUR = "#d01c8b"
FRESH_FLOOR_COLOUR = "#1b9e77"
LINEAGE_COLOURS = ("#7570b3", "#66a61e", "#a6761d", "#e7298a", "#17becf", "#525252")
#: The demo's loops (`curator.loop.demo_names.LOOPS`), as lineage-name suffixes, and their colours.
LOOP_COLOURS = dict(zip(LOOPS, (NO_FLOOR_COLOUR, FRESH_FLOOR_COLOUR), strict=True))
#: The near-duplicate methods, in dark neutrals that mean nothing else.
METHOD_COLOURS = ("#252525", "#737373")


def lineage_colours(lineages: Sequence[str]) -> dict[str, str]:
    """One colour per lineage meaning: a demo loop's colour for its lineages (text and digits
    alike), the next colour of `LINEAGE_COLOURS` for each other lineage, in order."""
    colours: dict[str, str] = {}
    others = 0
    for name in lineages:
        loop = loop_of(name)
        if loop is not None:
            colours[name] = LOOP_COLOURS[loop]
        else:
            colours[name] = LINEAGE_COLOURS[others % len(LINEAGE_COLOURS)]
            others += 1
    return colours


def synthetic_colours(generations: Sequence[int], deepest: int) -> dict[int, Any]:
    """The warm ramp's colour of each synthetic generation, spread over 1..`deepest` (the
    store's deepest generation), so a generation has the same colour in every chart."""
    import matplotlib

    ramp = matplotlib.colormaps["YlOrRd"]
    return {g: ramp(0.3 + 0.65 * (g - 1) / max(deepest - 1, 1)) for g in generations}


def lineage_styles(lineages: Sequence[str]) -> dict[str, tuple[str, str]]:
    """A marker and line style per lineage family (the name without its demo loop suffix:
    ``text`` for ``text-no-floor``), so a family's lineages share a style."""
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
    families = [
        name.removesuffix(f"-{loop}") if (loop := loop_of(name)) else name for name in lineages
    ]
    order = list(dict.fromkeys(families))
    return {
        name: styles[order.index(family) % len(styles)]
        for name, family in zip(lineages, families, strict=True)
    }


def save_figure(figure: Figure, root: str, stem: str) -> bytes:
    """Write `figure` as STEM.png and STEM.svg in `root`; return the PNG bytes."""

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    png = buffer.getvalue()
    with open(os.path.join(root, f"{stem}.png"), "wb") as handle:
        handle.write(png)
    # SVG without a timestamp, so the same store gives the same file; its words kept as text
    # (not glyph outlines), so they can be searched and read aloud.
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(
            os.path.join(root, f"{stem}.svg"),
            format="svg",
            bbox_inches="tight",
            metadata={"Date": None},
        )
    return png


def new_figure(rows: int, columns: int, size: tuple[float, float]) -> tuple[Figure, Any]:
    """A figure of rows × columns axes drawn by Agg, without pyplot (so the process's
    matplotlib backend, a notebook's say, is left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False)


def figure_grid(count: int, width: float = 6.0, height: float = 3.6) -> tuple[Figure, list[Any]]:
    columns = 1 if count == 1 else 2
    rows = (count + columns - 1) // columns
    figure, axes = new_figure(rows, columns, (width * columns, height * rows))
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return figure, flat[:count]
