"""Static matplotlib pictures of a trace (dolab.plots): deterministic, with the expected lanes,
bars, ticks and arrows."""
from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")

from IPython.core.formatters import DisplayFormatter
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation
from test_views import lost_update, synthetic

from dolab import Lab, plots, views
from dolab import trace as t


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    return buffer.getvalue()


async def lost_update_lab() -> Lab:
    lab = Lab(name="my-worker", path=None, clock="virtual")
    await lost_update(lab)
    return lab


def filled(ax: Any, color: str) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_fill()
            and p.get_linewidth() == 0 and to_hex(p.get_facecolor()) == color]


# ---- determinism ---------------------------------------------------------------------------------

async def test_same_trace_same_png() -> None:
    first, second = await lost_update_lab(), await lost_update_lab()
    try:
        assert [e.kind for e in first.trace] == [e.kind for e in second.trace]
        assert png(first.trace.plot()) == png(second.trace.plot()) == png(first.trace.plot())
        assert png(first.trace.sequence()) == png(second.trace.sequence())
    finally:
        first.close()
        second.close()


async def test_plots_return_figures_outside_pyplot(lab: Lab) -> None:
    import matplotlib.pyplot as plt

    await lost_update(lab)
    before = plt.get_fignums()
    assert isinstance(lab.trace.plot(), Figure) and isinstance(lab.trace.sequence(), Figure)
    assert plt.get_fignums() == before  # nothing left open: a cell shows the picture once


# ---- timeline ------------------------------------------------------------------------------------

async def test_timeline_plot_draws_lanes_bars_ticks_and_legend(lab: Lab) -> None:
    await lost_update(lab)
    ax = lab.trace.plot().axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["COUNTER:c\n(live)"]
    assert len(filled(ax, views.SEGMENTS["external"]["color"])) == 3  # one per request
    assert len(filled(ax, views.SEGMENTS["held"]["color"])) == 3
    outlines = [p for p in ax.patches if not p.get_fill()]
    assert len(outlines) == 3
    ticks = [c for c in ax.collections if to_hex(c.get_color()[0]) == views.COMMIT_COLOR]
    assert len(ticks) == len(lab.trace.events(t.COMMIT))
    legend = ax.figure.legends[0]
    labels = [text.get_text() for text in legend.get_texts()]
    assert [s["label"] for s in views.SEGMENTS.values()] == labels[:5]
    assert {"commit", "read", "write", "error", "constructed"} <= set(labels)
    texts = [text.get_text() for text in ax.texts]
    assert texts == ["r1 ", "r2 ", "r3 "]


def test_timeline_plot_of_a_long_trace_says_what_it_hides() -> None:
    fig = plots.plot_timeline(synthetic(2_000), limit=100, title="busy")
    ax = fig.axes[0]
    assert ax.get_title(loc="left") == "busy\n100 requests · 1900 earlier requests not shown"
    assert len(ax.texts) == 0  # no per-bar labels when crowded
    assert fig.get_size_inches()[1] < 12


async def test_timeline_plot_on_the_time_axis(lab: Lab) -> None:
    await lost_update(lab)
    ax = lab.trace.plot(axis="time").axes[0]
    assert ax.get_xlabel() == "lab time (s) after 2026-01-01T00:00:00.000Z"
    low, high = ax.get_xlim()
    assert low < 0 and high > 0.005  # the three 5 ms waits fit


# ---- sequence ------------------------------------------------------------------------------------

async def test_sequence_plot_columns_and_arrows_in_order(lab: Lab) -> None:
    await lost_update(lab)
    fig = lab.trace.sequence()
    ax = fig.axes[0]
    arrows = [a for a in ax.texts if isinstance(a, Annotation)]
    view = views.sequence(lab.trace)
    assert len(arrows) == len(view.arrows) == 13
    ys = [a.xy[1] for a in arrows]
    assert ys == sorted(ys)  # messages go down the page in trace order
    headers = [x.get_text() for x in ax.texts if x.get_fontweight() == "bold"]
    assert headers == ["notebook", "COUNTER:c", "storage (ZODB)"]
    labels = [x.get_text() for x in ax.texts if not isinstance(x, Annotation)]
    gets = [labels.index(f"r{i}: get") for i in (1, 2, 3)]
    puts = [labels.index(f"r{i}: put count") for i in (1, 2, 3)]
    assert gets == sorted(gets) and max(gets) < min(puts)  # the lost update, drawn
    assert [a.xy[0] for a in arrows[:3]] == [1, 1, 1]  # calls land on the object's column
    assert [a.xyann[0] for a in arrows[:3]] == [0, 0, 0]


# ---- display in a notebook -----------------------------------------------------------------------

def test_figures_show_as_png_in_ipython(monkeypatch: Any) -> None:
    import IPython

    shell = SimpleNamespace(display_formatter=DisplayFormatter())
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    fig = plots.plot_timeline(synthetic(2))
    data, _ = shell.display_formatter.format(fig)
    assert data["image/png"].startswith(b"\x89PNG")
    assert data["text/plain"].startswith("<Figure size 1000x")  # what nbval compares
