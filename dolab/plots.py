"""Static matplotlib pictures of a trace, for lessons and docs: the timeline and a sequence diagram.

Both draw the view models of ``dolab.views`` (the same bars, colours and legend as the timeline
widget) onto a plain ``matplotlib.figure.Figure`` — not a pyplot figure, so nothing is left open
in pyplot's registry and a cell that ends with ``lab.trace.plot()`` shows the picture exactly once.
The same trace gives the same picture: no clock, no randomness, fixed sizes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from . import views
from .trace import Event

ROW_H = 0.8       # height of a bar inside its row (rows are 1.0 apart)
LANE_GAP = 0.5    # space between lanes
DPI = 100
FONT = 8
LEGEND_COLUMNS = 5
SEND_EDGE = "#1864ab"


def plot_timeline(events: Iterable[Event], *, limit: int = views.DEFAULT_LIMIT,
                  axis: str = "order", width: float = 10.0, title: str | None = None) -> Figure:
    """One lane per object; each request a bar from queued to released, cut by what it waited
    for; commits as green ticks; lifecycle events as markers. Returns the Figure."""
    _enable_inline_display()
    view = views.timeline(events, limit=limit, axis=axis)
    top = _lane_tops(view.lanes)
    total = sum(lane["rows"] for lane in view.lanes) + LANE_GAP * max(1, len(view.lanes))
    fig = Figure(figsize=(width, 2.2 + 0.32 * max(total, 2.0)), dpi=DPI)
    ax = fig.add_subplot()
    _draw_lanes(ax, view, top)
    _draw_bars(ax, view, top)
    _draw_ticks(ax, view, top)
    _draw_markers(ax, view, top)
    _finish_timeline(ax, view, top, total, title)
    return fig


def _lane_tops(lanes: list[dict[str, Any]]) -> dict[str, float]:
    tops: dict[str, float] = {}
    y = 0.0
    for lane in lanes:
        tops[lane["id"]] = y
        y += lane["rows"] + LANE_GAP
    return tops


def _row_y(top: dict[str, float], lane: str, row: int) -> float:
    """The y of a bar's centre (the axis is inverted: lanes go down the page)."""
    return top[lane] + row + 0.5


def _draw_lanes(ax: Any, view: views.TimelineView, top: dict[str, float]) -> None:
    x0, x1 = view.extent["x0"], view.extent["x1"]
    for i, lane in enumerate(view.lanes):
        y = top[lane["id"]] - LANE_GAP / 2
        if i % 2 == 0:
            ax.add_patch(Rectangle((x0 - (x1 - x0), y), 3 * (x1 - x0), lane["rows"] + LANE_GAP,
                                   facecolor="#f1f3f5", edgecolor="none", zorder=0))
    ax.set_yticks([top[lane["id"]] + lane["rows"] / 2 for lane in view.lanes],
                  [_lane_label(lane) for lane in view.lanes], fontsize=FONT)


def _lane_label(lane: dict[str, Any]) -> str:
    return f"{lane['label']}\n({lane['state']})" if lane["state"] else str(lane["label"])


def _draw_bars(ax: Any, view: views.TimelineView, top: dict[str, float]) -> None:
    span = view.extent["x1"] - view.extent["x0"]
    min_w = span * 0.002  # a zero-length wait stays visible as a sliver
    by_kind: dict[str, list[tuple[float, float, float]]] = {k: [] for k in views.SEGMENTS}
    for bar in view.bars:
        y = _row_y(top, bar["lane"], bar["row"])
        for seg in bar["segments"]:
            by_kind[seg["kind"]].append((seg["start"], max(seg["end"] - seg["start"], min_w), y))
        edge = views.ERROR_COLOR if bar["status"] == "error" else "#343a40"
        ax.add_patch(Rectangle((bar["start"], y - ROW_H / 2), max(bar["end"] - bar["start"], min_w),
                               ROW_H, fill=False, edgecolor=edge,
                               linewidth=1.6 if bar["status"] == "error" else 0.6, zorder=3))
        _draw_ops(ax, bar, y)
    for kind, spans in by_kind.items():
        for x, w, y in spans:
            ax.add_patch(Rectangle((x, y - ROW_H / 2), w, ROW_H, linewidth=0, zorder=2,
                                   facecolor=views.SEGMENTS[kind]["color"]))
    if len(view.bars) <= 40:
        for bar in view.bars:
            ax.text(bar["start"], _row_y(top, bar["lane"], bar["row"]), bar["request"] + " ",
                    ha="right", va="center", fontsize=FONT - 1, color="#495057", zorder=4)


def _draw_ops(ax: Any, bar: dict[str, Any], y: float) -> None:
    for op in bar["ops"]:
        if op["kind"] == "read":
            ax.plot([op["x"]], [y], marker="o", markersize=3.5, color="white",
                    markeredgecolor=views.OPS["read"]["color"], markeredgewidth=0.8, zorder=5)
        elif op["kind"] == "write":
            ax.plot([op["x"]], [y], marker="D", markersize=3.5, color=views.OPS["write"]["color"],
                    markeredgecolor="#343a40", markeredgewidth=0.6, zorder=5)
        elif op["kind"] == "send":
            ax.plot([op["x"]], [y], marker="^", markersize=4.5, color=views.OPS["send"]["color"],
                    markeredgecolor=SEND_EDGE, markeredgewidth=0.8, zorder=5)


def _draw_ticks(ax: Any, view: views.TimelineView, top: dict[str, float]) -> None:
    rows = {lane["id"]: lane["rows"] for lane in view.lanes}
    for tick in view.ticks:
        for lane in tick["lanes"]:
            ax.vlines(tick["x"], top[lane] - LANE_GAP / 2, top[lane] + rows[lane] + LANE_GAP / 2,
                      colors=views.COMMIT_COLOR, linewidth=1.4, zorder=6)


def _draw_markers(ax: Any, view: views.TimelineView, top: dict[str, float]) -> None:
    for marker in view.markers:
        style = views.MARKERS[marker["kind"]]
        ax.plot([marker["x"]], [top[marker["lane"]] - LANE_GAP / 4], marker=style["mpl"],
                markersize=7, color=style["color"], markeredgecolor=style["color"], zorder=7,
                linestyle="none")


def _finish_timeline(ax: Any, view: views.TimelineView, top: dict[str, float], total: float,
                     title: str | None) -> None:
    x0, x1 = view.extent["x0"], view.extent["x1"]
    pad = (x1 - x0) * 0.04
    ax.set_xlim(x0 - pad * (2.5 if len(view.bars) <= 40 else 1), x1 + pad)
    ax.set_ylim(total - LANE_GAP / 2, -LANE_GAP)
    ax.tick_params(labelsize=FONT)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    if view.axis == "order":
        ax.set_xlabel("trace order (event seq)", fontsize=FONT)
    else:
        ax.set_xlabel(f"lab time (s) after {view.extent['origin']}", fontsize=FONT)
    hidden = view.extent["hidden"]
    note = f" · {hidden} earlier requests not shown" if hidden else ""
    ax.set_title((title + "\n" if title else "") +
                 f"{view.extent['shown']} requests{note}", fontsize=FONT + 1, loc="left")
    handles = _legend(view)
    fig = ax.figure
    fig.legend(handles=handles, loc="lower center", ncol=LEGEND_COLUMNS, fontsize=FONT - 0.5,
               frameon=False)
    rows = -(-len(handles) // LEGEND_COLUMNS)
    fig.tight_layout(rect=(0.0, (0.1 + 0.19 * rows) / fig.get_figheight(), 1.0, 1.0))


def _legend(view: views.TimelineView) -> list[Any]:
    handles: list[Any] = [Patch(facecolor=s["color"], label=s["label"])
                          for s in views.SEGMENTS.values()]
    handles.append(Line2D([], [], color=views.COMMIT_COLOR, linewidth=1.4, label="commit"))
    handles.append(Line2D([], [], marker="o", markersize=4, color="white", linestyle="none",
                          markeredgecolor=views.OPS["read"]["color"], label="read"))
    handles.append(Line2D([], [], marker="D", markersize=4, color=views.OPS["write"]["color"],
                          linestyle="none", markeredgecolor="#343a40", label="write"))
    if "send" in view.extent["ops"]:
        handles.append(Line2D([], [], marker="^", markersize=5, linestyle="none",
                              color=views.OPS["send"]["color"], markeredgecolor=SEND_EDGE,
                              label="socket send"))
    handles.append(Patch(facecolor="none", edgecolor=views.ERROR_COLOR, linewidth=1.6,
                         label="error"))
    for kind in view.extent["marker_kinds"]:
        style = views.MARKERS[kind]
        handles.append(Line2D([], [], marker=style["mpl"], color=style["color"],
                              linestyle="none", markersize=6, label=style["label"]))
    return handles


# ---- sequence diagram ----------------------------------------------------------------------------

ARROW_STYLES: dict[str, dict[str, Any]] = {
    "call": {"color": "#212529", "linestyle": "-"},
    "return": {"color": "#495057", "linestyle": "--"},
    "error": {"color": views.ERROR_COLOR, "linestyle": "--"},
    "storage": {"color": views.SEGMENTS["storage"]["color"], "linestyle": "-"},
    "commit": {"color": views.COMMIT_COLOR, "linestyle": ":"},
    "ws": {"color": "#1971c2", "linestyle": "-"},
}
COLUMN_NAMES = {"caller": "notebook", "worker": "Worker", "storage": "storage (ZODB)"}


def plot_sequence(events: Iterable[Event], *, max_rows: int = views.SEQUENCE_ROWS,
                  title: str | None = None) -> Figure:
    """A sequence diagram: caller, clients, Worker, objects and storage as columns; calls,
    returns, reads, writes and commits as arrows in trace order (top to bottom)."""
    _enable_inline_display()
    view = views.sequence(events, max_rows=max_rows)
    cols = {name: i for i, name in enumerate(view.columns)}
    fig = Figure(figsize=(max(6.0, 2.1 * len(cols)), 1.4 + 0.3 * max(view.rows, 3)), dpi=DPI)
    ax = fig.add_subplot()
    _draw_columns(ax, view, cols)
    for act in view.activations:
        x = cols[act["column"]]
        x += 0.06 * act["depth"]  # an interleaved request's activation sits beside the first
        ax.add_patch(Rectangle((x - 0.04, act["start"]), 0.08, max(act["end"] - act["start"], 0.3),
                               facecolor="#dee2e6", edgecolor="#868e96", linewidth=0.6, zorder=2))
    for arrow in view.arrows:
        _draw_arrow(ax, arrow, cols)
    for note in view.notes:
        _draw_note(ax, note, cols)
    _finish_sequence(ax, view, cols, title)
    return fig


def _draw_columns(ax: Any, view: views.SequenceView, cols: dict[str, int]) -> None:
    bottom = max(view.rows, 1)
    for name, x in cols.items():
        ax.vlines(x, -0.6, bottom, colors="#adb5bd", linestyles="--", linewidth=0.8, zorder=1)
        ax.text(x, -1.0, COLUMN_NAMES.get(name, name), ha="center", va="center", fontsize=FONT,
                fontweight="bold", zorder=4, bbox={"boxstyle": "round,pad=0.35",
                                                   "facecolor": "#e7f5ff", "edgecolor": "#4c78a8"})


def _draw_arrow(ax: Any, arrow: dict[str, Any], cols: dict[str, int]) -> None:
    style = ARROW_STYLES[arrow["style"]]
    y, x0, x1 = arrow["row"], float(cols[arrow["src"]]), float(cols[arrow["dst"]])
    if x0 == x1:  # a call to itself: a small loop
        x1 = x0 + 0.3
    ax.annotate("", xy=(x1, y), xytext=(x0, y), zorder=3,
                arrowprops={"arrowstyle": "-|>", "color": style["color"],
                            "linestyle": style["linestyle"], "linewidth": 1.0,
                            "shrinkA": 2, "shrinkB": 2, "mutation_scale": 9})
    label = f"{arrow['request']}: {arrow['label']}" if arrow["request"] else arrow["label"]
    ax.text((x0 + x1) / 2, y - 0.12, label, ha="center", va="bottom", fontsize=FONT - 1,
            color=style["color"], zorder=4)


def _draw_note(ax: Any, note: dict[str, Any], cols: dict[str, int]) -> None:
    kind = note["kind"]
    color = views.MARKERS.get(kind, {}).get("color") or (
        views.COMMIT_COLOR if kind == "commit" else views.SEGMENTS["external"]["color"])
    ax.text(cols[note["column"]], note["row"], note["text"], ha="center", va="center",
            fontsize=FONT - 1, color=color, zorder=5,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": color,
                  "linewidth": 0.7})


def _finish_sequence(ax: Any, view: views.SequenceView, cols: dict[str, int],
                     title: str | None) -> None:
    ax.set_xlim(-0.6, max(len(cols) - 1, 1) + 0.6)
    ax.set_ylim(max(view.rows, 1), -1.6)
    ax.axis("off")
    note = f"{view.hidden_rows} earlier messages not shown" if view.hidden_rows else ""
    if title or note:
        ax.set_title(" · ".join(p for p in (title, note) if p), fontsize=FONT + 1, loc="left")
    ax.figure.tight_layout()


# ---- display ------------------------------------------------------------------------------------

def _enable_inline_display() -> None:
    """Make a Figure that ends a cell show as a PNG even if pyplot was never imported (only
    pyplot's inline backend registers IPython's Figure formatter)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(Figure)
        return  # pyplot's inline backend (or the user) already shows Figures
    except KeyError:
        pass
    from IPython.core.pylabtools import print_figure

    formatter.for_type(Figure, lambda fig: print_figure(  # type: ignore[no-untyped-call]
        fig, "png", bbox_inches="tight"))
