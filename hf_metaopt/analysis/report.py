"""ICLAnalysisReport: the result of one ICL-vs-finetuning analysis (contract 3).

The dictionary schema (every float is a plain float, every list a JSON list;
"ci95" entries are ``[low, high]`` bootstrap 95% intervals over queries)::

    accuracy:       {zsl, icl, ft}                 floats in [0, 1]
    accuracy_ci95:  {zsl, icl, ft}                 [low, high]
    predictions:    {zsl, icl, ft}                 label indices per query
    labels:         [int]                          gold label per query
    rec2ftp:        float | None                   None when FT fixes nothing
    rec2ftp_ci95:   [low, high] | None
    simaou:   {per_layer, mean, ci95, random_mean, random_per_layer,
               unnormalized_per_layer, unnormalized_mean, unnormalized_ci95}
    simam:    {per_layer_before, per_layer_after, per_layer_delta,
               before, after, delta, before_ci95, after_ci95, delta_ci95}
    kendall:  {per_layer, mean, ci95, random_mean, random_per_layer}
    controls: {"untrained": {accuracy, rec2ftp, simaou, simam, kendall}} or {}
    config:   {model, model_revision, task, template, label_words, separator,
               position, method, learning_rate, seed, n_demonstrations (used),
               n_queries, demonstrations_used (indices or ids), control,
               versions: {hf_metaopt, transformers, torch, peft}}
    notes:    [str]                                warnings the run raised
    selection: optional, the dev-split grid-search table ({"rows": [...], "chosen": {...}})
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_json, atomic_write_text

# The PNGs :meth:`ICLAnalysisReport.plot` writes, in the order report.md shows them.
PLOT_FILES = ("accuracy.png", "simaou.png", "simam.png", "kendall.png")

# Keys every report holds (ARCHITECTURE.md, contract 3).
REQUIRED_KEYS = ("accuracy", "predictions", "labels", "rec2ftp", "simaou", "simam", "kendall", "config")


class ICLAnalysisReport:
    """Accuracies, predictions and the four similarity metrics of one analysis.

    The report is a thin wrapper over a JSON-serialisable dictionary
    (:meth:`to_dict`), so it round-trips through :meth:`to_json` / :meth:`from_json`.
    """

    def __init__(self, data: dict[str, Any]):
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ValueError(f"ICLAnalysisReport data lacks the keys {missing}; it needs all of {list(REQUIRED_KEYS)}.")
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __repr__(self) -> str:
        acc = self._data["accuracy"]
        return f"ICLAnalysisReport(accuracy={acc}, rec2ftp={self._data['rec2ftp']})"

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the report as plain JSON types."""
        return json.loads(json.dumps(self._data, allow_nan=False))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text; with ``path``, also written there atomically."""
        text = json.dumps(self._data, indent=2, allow_nan=False)
        if path is not None:
            atomic_write_json(Path(path), self._data)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ICLAnalysisReport":
        return cls(dict(data))

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> "ICLAnalysisReport":
        """Load a report from a ``report.json`` path (or a run folder holding one) or JSON text."""
        if isinstance(path_or_text, str) and path_or_text.lstrip().startswith("{"):
            return cls(json.loads(path_or_text))
        path = Path(path_or_text)
        if path.is_dir():
            path = path / "report.json"
        return cls(json.loads(path.read_text()))

    # ------------------------------------------------------------------ files

    def to_markdown(self, plots_dir: str | None = ".") -> str:
        """A readable summary: accuracy table, the four metrics with baselines and 95%
        intervals, the untrained control, the dev-split selection, per-layer values, the
        settings and the run's notes. ``plots_dir`` (relative link target) embeds the PNGs;
        ``None`` leaves them out."""
        return _markdown(self._data, plots_dir)

    def plot(self, directory: str | os.PathLike) -> list[Path]:
        """Write the PNG plots into ``directory`` (matplotlib, Agg backend) and return their paths:
        accuracy bars (ZSL / ICL / FT with 95% error bars) and per-layer SimAOU, SimAM
        (before / after / delta) and Kendall curves with their baselines."""
        return _plots(self._data, Path(directory))

    def save(self, run_dir: str | os.PathLike) -> Path:
        """Write ``report.json``, ``report.md`` and the PNGs into the new folder ``run_dir``.

        The files are written into a temporary sibling folder that is renamed to ``run_dir``
        once complete, so a crash never leaves a half-written run and an existing run is never
        touched: if ``run_dir`` exists, :class:`FileExistsError` (pick another name).
        """
        run_dir = Path(run_dir)
        if run_dir.exists():
            raise FileExistsError(f"run folder {str(run_dir)!r} already exists; choose another output dir (runs are never overwritten).")
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".tmp", dir=run_dir.parent))
        try:
            atomic_write_json(tmp / "report.json", self._data)
            atomic_write_text(tmp / "report.md", self.to_markdown())
            self.plot(tmp)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; a run folder is an ordinary folder
            os.rename(tmp, run_dir)  # atomic; fails rather than replace a folder made meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return run_dir


# ---------------------------------------------------------------------- markdown helpers

SETTINGS = ("zsl", "icl", "ft")
SETTING_NAMES = {"zsl": "ZSL (zero-shot)", "icl": "ICL (demonstrations in context)", "ft": "FT (finetuned on the demonstrations)"}


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(ci: Any, digits: int = 3) -> str:
    return "n/a" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def metric_rows(data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, value, 95% interval, baseline) rows of the four metrics (report.md and the Hub card)."""
    aou, am, kd = data.get("simaou", {}), data.get("simam", {}), data.get("kendall", {})
    rec = data.get("rec2ftp")
    rows = [
        ("Rec2FTP", "n/a (FT fixes no query)" if rec is None else _num(rec), _ci(data.get("rec2ftp_ci95")), "-"),
        ("SimAOU", _num(aou.get("mean")), _ci(aou.get("ci95")), f"random vector {_num(aou.get('random_mean'))}"),
        ("SimAOU (unnormalised, Deutch et al.)", _num(aou.get("unnormalized_mean")), _ci(aou.get("unnormalized_ci95")), "-"),
        ("SimAM before finetuning cos(ICL, ZSL)", _num(am.get("before")), _ci(am.get("before_ci95")), "-"),
        ("SimAM after finetuning cos(ICL, FT)", _num(am.get("after")), _ci(am.get("after_ci95")), f"before finetuning {_num(am.get('before'))}"),
        ("SimAM delta cos(ICL-ZSL, FT-ZSL)", _num(am.get("delta")), _ci(am.get("delta_ci95")), "-"),
        ("Kendall", _num(kd.get("mean")), _ci(kd.get("ci95")), f"random scores {_num(kd.get('random_mean'))}"),
    ]
    return rows


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def _markdown(data: dict[str, Any], plots_dir: str | None) -> str:
    cfg = data.get("config", {})
    acc, acc_ci = data["accuracy"], data.get("accuracy_ci95", {})
    title = f"# ICL vs finetuning: {cfg.get('model', 'model')} on {cfg.get('task') or 'custom data'}"
    n_q = len(data.get("labels", []))
    lines = [
        title,
        "",
        f"{cfg.get('n_demonstrations', '?')} demonstrations, {n_q} queries, method `{cfg.get('method', '?')}`, "
        f"learning rate {cfg.get('learning_rate', '?')}, position `{cfg.get('position', '?')}`, seed {cfg.get('seed', '?')}. "
        "Intervals are bootstrap 95% intervals over queries.",
        "",
        "## Accuracy",
        "",
    ]
    lines += _table(["setting", "accuracy", "95% interval"], [[SETTING_NAMES[s], _num(acc.get(s)), _ci(acc_ci.get(s))] for s in SETTINGS])
    lines += ["", "## ICL vs finetuning metrics", ""]
    lines += _table(["metric", "value", "95% interval", "baseline"], [list(r) for r in metric_rows(data)])
    control = (data.get("controls") or {}).get("untrained")
    if control:
        c_acc = control.get("accuracy", {})
        lines += [
            "",
            "## Untrained control (Deutch et al.)",
            "",
            "The same analysis on a randomly initialised copy of the architecture, which cannot learn "
            "in context: metrics that score about as high here say little about ICL.",
            "",
        ]
        lines += _table(
            ["metric", "pretrained", "untrained"],
            [[f"accuracy {s.upper()}", _num(acc.get(s)), _num(c_acc.get(s))] for s in SETTINGS]
            + [
                ["Rec2FTP", _num(data.get("rec2ftp")), _num(control.get("rec2ftp"))],
                ["SimAOU", _num(data["simaou"].get("mean")), _num((control.get("simaou") or {}).get("mean"))],
                ["SimAM after", _num(data["simam"].get("after")), _num((control.get("simam") or {}).get("after"))],
                ["SimAM delta", _num(data["simam"].get("delta")), _num((control.get("simam") or {}).get("delta"))],
                ["Kendall", _num(data["kendall"].get("mean")), _num((control.get("kendall") or {}).get("mean"))],
            ],
        )
    selection = data.get("selection")
    if selection:
        lines += ["", "## Hyperparameter selection on the dev split", ""]
        criterion = selection.get("criterion")
        if criterion:
            lines += [criterion, ""]
        rows = selection.get("rows", [])
        lines += _table(
            ["learning rate", "seed", "dev ZSL", "dev ICL", "dev FT"],
            [[r.get("learning_rate"), r.get("seed"), _num(r.get("zsl")), _num(r.get("icl")), _num(r.get("ft"))] for r in rows],
        )
        chosen = selection.get("chosen", {})
        lines += ["", f"Chosen: learning rate {chosen.get('learning_rate')}, seed {chosen.get('seed')}; the tables above are on the test split."]
    layers = _per_layer_rows(data)
    if layers:
        lines += ["", "## Per layer", ""]
        lines += _table(["layer", "SimAOU", "SimAOU random", "SimAM before", "SimAM after", "SimAM delta", "Kendall", "Kendall random"], layers)
    if plots_dir is not None:
        lines += ["", "## Plots", ""]
        prefix = "" if plots_dir in (".", "") else plots_dir.rstrip("/") + "/"
        lines += [f"![{name[:-4]}]({prefix}{name})" for name in PLOT_FILES]
    lines += ["", "## Settings", ""]
    lines += _table(["setting", "value"], [[k, _setting(v)] for k, v in cfg.items() if k != "versions"])
    versions = cfg.get("versions") or {}
    if versions:
        lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())]
    notes = data.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _setting(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    text = text if len(text) <= 200 else text[:197] + "..."
    return text.replace("|", "\\|").replace("\n", "\\n")


def _per_layer_rows(data: dict[str, Any]) -> list[list[str]]:
    aou, am, kd = data.get("simaou", {}), data.get("simam", {}), data.get("kendall", {})
    series = [
        aou.get("per_layer"),
        aou.get("random_per_layer"),
        am.get("per_layer_before"),
        am.get("per_layer_after"),
        am.get("per_layer_delta"),
        kd.get("per_layer"),
        kd.get("random_per_layer"),
    ]
    n = max((len(s) for s in series if s), default=0)
    return [[str(i)] + [_num(s[i]) if s and i < len(s) else "-" for s in series] for i in range(n)]


# ---------------------------------------------------------------------- plots


def _figure(width: float = 6.4, height: float = 4.0):
    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _layer_plot(ax, values, label, **style):
    if values:
        ax.plot(range(len(values)), values, marker="o", markersize=3, label=label, **style)


def _plots(data: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cfg = data.get("config", {})
    subtitle = f"{cfg.get('model', '')} / {cfg.get('task') or 'custom data'}"
    control = (data.get("controls") or {}).get("untrained") or {}
    paths = []

    fig, ax = _figure(5.0, 4.0)
    acc, acc_ci = data["accuracy"], data.get("accuracy_ci95", {})
    heights = [acc[s] for s in SETTINGS]
    errors = None
    if all(acc_ci.get(s) for s in SETTINGS):
        errors = [[max(0.0, acc[s] - acc_ci[s][0]) for s in SETTINGS], [max(0.0, acc_ci[s][1] - acc[s]) for s in SETTINGS]]
    ax.bar([s.upper() for s in SETTINGS], heights, yerr=errors, capsize=6, color=["#999999", "#1f77b4", "#ff7f0e"])
    for i, h in enumerate(heights):
        ax.text(i, h / 2, f"{h:.3f}", ha="center", color="white", fontweight="bold")
    if control.get("accuracy"):
        ax.scatter([s.upper() for s in SETTINGS], [control["accuracy"][s] for s in SETTINGS], marker="x", color="black", zorder=3, label="untrained control")
        ax.legend(loc="lower right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% interval)")
    ax.set_title(f"Accuracy\n{subtitle}", fontsize=10)
    paths.append(_save(fig, directory / "accuracy.png"))

    curves = {
        "simaou.png": (
            "SimAOU: cos(ICL update, FT update) per layer",
            [
                (data["simaou"].get("per_layer"), "SimAOU", {}),
                (data["simaou"].get("unnormalized_per_layer"), "unnormalised", {"linestyle": "--"}),
                (data["simaou"].get("random_per_layer"), "random-vector baseline", {"color": "gray", "linestyle": ":"}),
                ((control.get("simaou") or {}).get("per_layer"), "untrained control", {"color": "black", "linestyle": "-."}),
            ],
        ),
        "simam.png": (
            "SimAM: attention-map similarity per layer",
            [
                (data["simam"].get("per_layer_before"), "before finetuning cos(ICL, ZSL)", {}),
                (data["simam"].get("per_layer_after"), "after finetuning cos(ICL, FT)", {}),
                (data["simam"].get("per_layer_delta"), "delta cos(ICL-ZSL, FT-ZSL)", {"linestyle": "--"}),
                ((control.get("simam") or {}).get("per_layer_delta"), "untrained control, delta", {"color": "black", "linestyle": "-."}),
            ],
        ),
        "kendall.png": (
            "Kendall: attention to demonstration tokens per layer",
            [
                (data["kendall"].get("per_layer"), "Kendall tau(ICL, FT)", {}),
                (data["kendall"].get("random_per_layer"), "random-scores baseline", {"color": "gray", "linestyle": ":"}),
                ((control.get("kendall") or {}).get("per_layer"), "untrained control", {"color": "black", "linestyle": "-."}),
            ],
        ),
    }
    for name, (title, series) in curves.items():
        fig, ax = _figure()
        for values, label, style in series:
            _layer_plot(ax, values, label, **style)
        if name != "simaou.png" or data["simaou"].get("random_mean") is not None:
            ax.axhline(0.0, color="lightgray", linewidth=0.8)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_ylabel("similarity")
        ax.set_title(f"{title}\n{subtitle}", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        paths.append(_save(fig, directory / name))
    return paths


def _save(fig, path: Path) -> Path:
    import io

    from ..fileio import atomic_write_bytes

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
