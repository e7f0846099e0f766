"""One colour and one line style per setting, for every plot: the PNGs (matplotlib) and the HTML pages (plotly).

A reader who learns that FT is orange in one figure finds it orange in every other: the per-run
plots, report.html, the sweep's summary.png and summary.html all take their colours from here.
Colours are hex strings both libraries read; a line style is named once and translated with
:func:`mpl_dash` / :func:`plotly_dash`.
"""

from __future__ import annotations

__all__ = ["COLORS", "DASHES", "FAMILY_COLORS", "color", "mpl_dash", "plotly_dash"]

# Settings (routes), the models compared, baselines and the paper. Colour-blind safe (Okabe-Ito).
COLORS = {
    "zsl": "#7f7f7f",        # zero-shot: grey, the reference point
    "icl": "#0072b2",        # in context: blue
    "ft": "#e69f00",         # finetuned: orange
    "pretrained": "#0072b2",
    "untrained": "#000000",  # the untrained control (Deutch et al.): black
    "shuffled_labels": "#cc79a7",
    "baseline": "#999999",   # random-vector / random-score baselines
    "paper": "#d55e00",      # Dai et al.'s numbers
}
# Series of one family drawn together (SimAM before / after / delta, tasks, ...): none of them a setting's colour.
FAMILY_COLORS = ("#009e73", "#cc79a7", "#56b4e9", "#882255", "#44aa99", "#332288")

# Line styles by role: the metric itself, its variant, a random baseline, a control.
DASHES = {"solid": ("-", "solid"), "dashed": ("--", "dash"), "dotted": (":", "dot"), "dashdot": ("-.", "dashdot")}


def color(name: str, index: int = 0) -> str:
    """The colour of a setting or control ``name``; an unknown name takes the ``index``-th family colour."""
    return COLORS.get(name, FAMILY_COLORS[index % len(FAMILY_COLORS)])


def mpl_dash(style: str) -> str:
    """matplotlib's ``linestyle`` for a style of :data:`DASHES`."""
    return DASHES[style][0]


def plotly_dash(style: str) -> str:
    """plotly's ``line.dash`` for a style of :data:`DASHES`."""
    return DASHES[style][1]
