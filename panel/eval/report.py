"""The eval report: an eval document (schema panel.eval/1) rendered as one self-contained page.

Tables come from templates/eval.html.j2, rendered by panel.pages (sandboxed, autoescaped).
The two plots are inline SVG drawn by matplotlib on bare Figure objects (no pyplot, so no GUI
backend and no global state): text stays text, the SVG carries no date, its hashed ids have a
fixed salt and every id is prefixed with the plot's name, so one document always gives the same
page and two plots never share an id. matplotlib escapes the text it writes,
so its SVG is the only markup the page takes as is. Nothing on the page is fetched.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from panel import pages
from panel.eval.evaluate import BIAS_ALPHA, BIAS_FLIPS, BIAS_POINTS
from panel.eval.fmt import effect, reused_cost
from panel.rules import PROBE_FLAG_FLIPS, SHIP_THRESHOLD
from panel.rules import PROBE_FLAG_POINTS as FLAG_DELTA

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

COLUMNS = 4
"""Histograms per row of the small multiples."""

TITLE_CHARS = 28

_INK = "#1b1a17"
_MUTED = "#5d5950"
_BARS = "#3445b4"
_CROWDED = "#d29a2a"
_SHIP_LINE = "#146336"
_PALETTE = ("#3445b4", "#a33a6e", "#2e9a58", "#d29a2a", "#5d5950", "#0f7c8a")

_PLOT_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,  # a persona named "$x$" is a name, not TeX
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.edgecolor": _MUTED,
    "axes.labelcolor": _INK,
    "text.color": _INK,
    "xtick.color": _MUTED,
    "ytick.color": _MUTED,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_SVG_ID = re.compile(r'(\bid="|url\(#|href="#)')
"""Where an SVG names or points to an element id: prefixed per plot so two plots never share one."""


def eval_html(doc: dict[str, Any]) -> str:
    """Return the HTML report of an eval document (schema panel.eval/1)."""
    plots = {
        "histograms": histograms_svg(doc["personas"]),
        "perturbations": perturbations_svg(doc["perturbations"], doc["personas"]),
        "mitigations": mitigations_svg(doc.get("mitigations")),
    }
    rules = {
        "alpha": f"{BIAS_ALPHA:g}",
        "bias_points": f"{BIAS_POINTS:g}",
        "bias_flips": share(BIAS_FLIPS),
        "flag_points": f"{FLAG_DELTA:g}",
        "flag_flips": share(PROBE_FLAG_FLIPS),
    }
    return pages.render_html(
        "eval.html.j2", doc=doc, plots=plots, fmt=FORMATS, root="", standalone=True, **rules
    )


# ---- Plots ----------------------------------------------------------------------------------


def histograms_svg(personas: dict[str, Any]) -> Markup | None:
    """Return each persona's score histogram as small multiples in one SVG (None: no persona)."""
    if not personas:
        return None
    columns = min(COLUMNS, len(personas))
    rows = math.ceil(len(personas) / columns)
    with _plot_style():
        figure = _figure(2.6 * columns, 2.2 * rows)
        grid = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
        cells = [axes for row in grid for axes in row]
        for axes, persona in zip(cells, personas.values(), strict=False):
            _draw_histogram(axes, persona)
        for axes in cells[len(personas) :]:
            axes.set_visible(False)
        return _svg(figure, "histograms")


def _draw_histogram(axes: Axes, persona: dict[str, Any]) -> None:
    crowded = persona["crowded_band"]
    bands = persona["histogram"]
    colours = [_CROWDED if crowded and band["from"] == crowded["from"] else _BARS for band in bands]
    axes.bar(
        [band["from"] for band in bands],
        [band["count"] for band in bands],
        width=[band["to"] - band["from"] + 1 for band in bands],
        align="edge",
        color=colours,
        edgecolor="white",
        linewidth=0.5,
    )
    axes.axvline(SHIP_THRESHOLD, color=_SHIP_LINE, linestyle="--", linewidth=1)
    axes.set_xlim(0, 100)
    axes.set_xticks([0, 20, 40, SHIP_THRESHOLD, 80, 100])
    axes.set_title(short(persona["display_name"]), fontsize=10, loc="left")
    axes.set_xlabel("score")


def perturbations_svg(perturbations: dict[str, Any], personas: dict[str, Any]) -> Markup | None:
    """Return the mean score change per probe as horizontal bars (coloured by the probe's
    reading) with their 95% interval, each persona's mean as a dot, over a shaded band: the
    null probe's interval, the noise (None: no change)."""
    kinds = [kind for kind, p in perturbations.items() if p and p["mean_delta"] is not None]
    if not kinds:
        return None
    by_persona = _persona_series(kinds, perturbations, personas)
    with _plot_style():
        figure = _figure(7.5, 0.8 + 0.5 * len(kinds))
        axes = figure.subplots()
        rows = [perturbations[kind] for kind in kinds]
        _draw_deltas(axes, kinds, rows, by_persona)
        _shade_noise(axes, perturbations.get("repeat"))
        if by_persona:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        return _svg(figure, "perturbations")


def mitigations_svg(compared: dict[str, Any] | None) -> Markup | None:
    """Return each probe's change beyond the noise without and with the mitigations, side by
    side with their 95% intervals (the null probe: its own change); None without mitigations."""
    if not compared:
        return None
    kinds = list(compared["probes"])
    with _plot_style():
        figure = _figure(7.5, 0.8 + 0.6 * len(kinds))
        axes = figure.subplots()
        for index, side in enumerate(("before", "after")):
            rows = [compared["probes"][kind][side] for kind in kinds]
            offsets = [k + (index - 0.5) * 0.4 for k in range(len(kinds))]
            values = [_or_nan(effect(row)) for row in rows]
            low, high = zip(*(_whisker(row, beyond=True) for row in rows), strict=True)
            colour = _MUTED if side == "before" else _BARS
            label = "without" if side == "before" else "with " + ", ".join(compared["names"])
            axes.barh(offsets, values, height=0.36, color=colour, label=short(label))
            axes.errorbar(values, offsets, xerr=[low, high], fmt="none", ecolor=_INK, lw=0.8)
        axes.axvline(0, color=_INK, linewidth=0.8)
        axes.set_yticks(range(len(kinds)), [short(kind) for kind in kinds])
        axes.invert_yaxis()
        _symmetric_limits(axes)
        axes.set_xlabel("change beyond the noise (points); repeat: its own change")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        return _svg(figure, "mitigations")


def _whisker(row: dict[str, Any], beyond: bool = False) -> tuple[float, float]:
    """Return the distances from a bar's end to its 95% interval's ends (0, 0: none); with
    beyond, of the change beyond the noise."""
    source = row.get("beyond_noise") if beyond and row.get("beyond_noise") else row
    value = effect(row) if beyond else row["mean_delta"]
    interval = (source or {}).get("ci")
    if value is None or not interval or interval[0] is None or interval[1] is None:
        return 0.0, 0.0
    return max(0.0, value - interval[0]), max(0.0, interval[1] - value)


def _persona_series(
    kinds: list[str], perturbations: dict[str, Any], personas: dict[str, Any]
) -> list[tuple[str, list[float]]]:
    """Return (display name, mean delta per kind) for each persona found in by_persona, in the
    document's persona order (nan, no dot, where a kind lacks it); [] when there is none."""
    found = {name for kind in kinds for name in perturbations[kind].get("by_persona") or {}}
    names = [name for name in personas if name in found] + sorted(found - personas.keys())
    return [
        (
            _display_name(name, personas),
            [_or_nan((perturbations[kind].get("by_persona") or {}).get(name)) for kind in kinds],
        )
        for name in names
    ]


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _display_name(name: str, personas: dict[str, Any]) -> str:
    persona = personas.get(name)
    return short(persona["display_name"] if persona else name)


_READING_COLOURS = {
    "biased": "#a0261c",
    "noisy": _CROWDED,
    "too-few-cards": _MUTED,
    "ok": "#2e9a58",
    "baseline": _MUTED,
}


def _draw_deltas(
    axes: Axes,
    kinds: list[str],
    rows: list[dict[str, Any]],
    by_persona: list[tuple[str, list[float]]],
) -> None:
    values = [row["mean_delta"] for row in rows]
    colours = [_READING_COLOURS.get(row.get("reading", "ok"), _BARS) for row in rows]
    axes.barh(range(len(kinds)), values, height=0.6, color=colours, alpha=0.85)
    low, high = zip(*(_whisker(row) for row in rows), strict=True)
    axes.errorbar(values, range(len(kinds)), xerr=[low, high], fmt="none", ecolor=_INK, lw=0.8)
    for index, (label, deltas) in enumerate(by_persona):
        offsets = [k + (index - (len(by_persona) - 1) / 2) * 0.12 for k in range(len(kinds))]
        colour = _PALETTE[index % len(_PALETTE)]
        axes.plot(deltas, offsets, "o", color=colour, markersize=4, label=label)
    axes.axvline(0, color=_INK, linewidth=0.8)
    axes.set_yticks(range(len(kinds)), [short(kind) for kind in kinds])
    axes.invert_yaxis()
    _symmetric_limits(axes)
    axes.set_xlabel("mean score change (points), 95% interval; shaded: the noise (repeat)")


def _shade_noise(axes: Axes, repeat: dict[str, Any] | None) -> None:
    """Shade the null probe's 95% interval: changes inside it are what asking again gives."""
    interval = (repeat or {}).get("ci")
    if interval and interval[0] is not None and interval[1] is not None:
        axes.axvspan(interval[0], interval[1], color=_MUTED, alpha=0.12, linewidth=0)


def _symmetric_limits(axes: Axes) -> None:
    low, high = axes.get_xlim()
    limit = max(FLAG_DELTA * 2, abs(low), abs(high)) * 1.05
    axes.set_xlim(-limit, limit)


@contextmanager
def _plot_style() -> Iterator[None]:
    """Draw in panel's plot style (the salt makes matplotlib's hashed ids stable across runs)."""
    import matplotlib

    with matplotlib.rc_context({**_PLOT_STYLE, "svg.hashsalt": "panel"}):
        yield


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure: Figure, name: str) -> Markup:
    """Return the figure as an <svg> element, without the XML declaration and DOCTYPE, its ids
    prefixed with name (a plot's fixed name, never document text)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=_NO_METADATA, facecolor="white")
    text = buffer.getvalue()
    svg = _SVG_ID.sub(rf"\g<1>{name}-", text[text.index("<svg") :])
    # Safe as markup: matplotlib wrote every element and escaped every text it drew.
    return Markup(svg)


def short(text: str) -> str:
    """Return text cut to a plot label's length, with an ellipsis when cut."""
    text = " ".join(str(text).split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"


# ---- Numbers for humans -------------------------------------------------------------------

MISSING = "—"


def number(value: float | None, digits: int = 1) -> str:
    """Return 71.25 as "71.2" (digits after the point), "—" when missing."""
    return MISSING if value is None else f"{value:.{digits}f}"


def signed(value: float | None) -> str:
    """Return a change with its sign: 6.1 -> "+6.1", -3 -> "−3.0"."""
    return MISSING if value is None else f"{round(value, 1) + 0.0:+.1f}".replace("-", "−")


def share(value: float | None) -> str:
    """Return a fraction as a whole percentage: 0.12 -> "12%"."""
    return MISSING if value is None else f"{value * 100:.0f}%"


def count(value: int | None) -> str:
    """Return a count with thousands separators: 100000 -> "100,000"."""
    return MISSING if value is None else f"{value:,}"


def usd(value: float | None) -> str:
    """Return a cost in dollars: "$0.0031", "$12.40", "$0.00"; "unknown" when missing."""
    if value is None:
        return "unknown"
    if value == 0 or value >= 1:
        return f"${value:,.2f}"
    if value < 0.0001:
        return "under $0.0001"
    return f"${value:.2g}" if value < 0.01 else f"${value:.2f}"


def band(value: dict[str, Any] | None) -> str:
    """Return a score band as "70–74"."""
    return MISSING if value is None else f"{value['from']}–{value['to']}"


def outcome(value: float | str | None) -> str:
    """Return a card's outcome: a number as "0.8", a word as is, "—" when the card has none."""
    if value is None:
        return MISSING
    return str(value) if isinstance(value, str) else f"{value:g}"


def alpha_reading(alpha: float | None) -> str:
    """Return what Krippendorff's alpha says, on Krippendorff's own thresholds (0.667, 0.8):
    how alike the personas score, never whether they are right."""
    if alpha is None:
        return "Not defined: too few cards scored by two or more personas, or no spread at all."
    if alpha >= 0.8:
        return (
            "High agreement: the personas score the cards alike. Agreement is not correctness: "
            "judges who share a mistake agree too."
        )
    if alpha >= 0.667:
        return "Moderate agreement: the personas score the cards somewhat alike."
    return "Low agreement: the personas' scores disagree more than a reliable panel's would."


def labels_reading(labels: dict[str, Any] | None) -> str:
    """Return what the labels say of the panel being right, to read beside its agreement."""
    if not labels or labels.get("pairwise_accuracy") is None:
        return (
            "No labels: nothing here says whether the panel is right; give cards an "
            "`outcome:` to check."
        )
    accuracy = labels["pairwise_accuracy"]
    verdict = (
        "worse than a coin"
        if accuracy < 0.45
        else "no better than a coin"
        if accuracy <= 0.55
        else "better than a coin"
    )
    return (
        f"Against the labels, the panel orders {share(accuracy)} of the labelled pairs as the "
        f"outcomes do: {verdict}."
    )


READINGS = {
    "biased": "biased: beyond the noise",
    "noisy": "noisy: moves scores, but no more than asking again",
    "too-few-cards": "too few cards to test: moves scores, on too few cards to tell why",
    "ok": "ok",
    "baseline": "the noise itself",
}


def reading(value: str) -> str:
    """Return what a probe's reading means, in a few words."""
    return READINGS.get(value, value)


def interval(value: list[float | None] | None) -> str:
    """Return a 95% interval as "+1.2 to +4.5" ("—" without one)."""
    if not value or value[0] is None or value[1] is None:
        return MISSING
    return f"{signed(value[0])} to {signed(value[1])}"


def p_value(value: float | None) -> str:
    """Return a p-value with three decimals ("<0.001" below)."""
    if value is None:
        return MISSING
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def points(value: float | None) -> str:
    """Return a change in percentage points: 0.12 -> "+12 pts"."""
    return MISSING if value is None else f"{round(100 * value):+d} pts".replace("-", "−")


_KAPPA_WORDS = (
    (0.0, "poor"),
    (0.21, "slight"),
    (0.41, "fair"),
    (0.61, "moderate"),
    (0.81, "substantial"),
    (math.inf, "almost perfect"),
)


def kappa_reading(kappa: float | None) -> str:
    """Return what Fleiss' kappa says, in Landis and Koch's words."""
    if kappa is None:
        return "Not defined: too few cards, or every verdict the same."
    word = next(word for limit, word in _KAPPA_WORDS if kappa < limit)
    if kappa < 0:
        return "Less agreement than chance would give (Landis and Koch: poor)."
    return f"{word[:1].upper()}{word[1:]} agreement beyond chance (Landis and Koch)."


FORMATS: dict[str, Callable[..., str]] = {
    "reused_cost": reused_cost,
    "alpha_reading": alpha_reading,
    "band": band,
    "count": count,
    "interval": interval,
    "kappa_reading": kappa_reading,
    "labels_reading": labels_reading,
    "number": number,
    "p_value": p_value,
    "points": points,
    "reading": reading,
    "outcome": outcome,
    "share": share,
    "signed": signed,
    "usd": usd,
}
"""The formatters the template calls as fmt.NAME(value)."""
