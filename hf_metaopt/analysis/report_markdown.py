"""report.md: the readable summary of one analysis report (also the source of the Hub card's metric rows)."""

from __future__ import annotations

import json
from typing import Any

from ..model_id import display_name
from .report_finetuning import finetuning_section
from .report_orders import orders_table
from .report_verdict import CONTROL_TITLES, cell_text, verdict_table

__all__ = ["LABEL_SHIFT_ROWS", "PLOT_FILES", "SETTINGS", "change_recall_text", "markdown", "metric_rows", "of_counts",
           "rec2ftp_text"]

# The PNGs ICLAnalysisReport.plot writes, in the order report.md shows them.
PLOT_FILES = ("accuracy.png", "simaou.png", "simam.png", "kendall.png")
SETTINGS = ("zsl", "icl", "ft")
SETTING_NAMES = {"zsl": "ZSL (zero-shot)", "icl": "ICL (demonstrations in context)", "ft": "FT (finetuned on the demonstrations)"}


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(ci: Any, digits: int = 3) -> str:
    return "n/a" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def of_counts(value: float | None, counts: Any, numerator: str, denominator: str, undefined: str = "n/a") -> str:
    """A ratio of query counts with its counts beside it, ``0.667 (2 of 3)`` (a ratio alone for reports without counts)."""
    if value is None:
        return undefined
    counts = counts or {}
    if counts.get(numerator) is None or counts.get(denominator) is None:
        return _num(value)
    return f"{_num(value)} ({counts[numerator]} of {counts[denominator]})"


def rec2ftp_text(part: dict[str, Any], undefined: str = "n/a") -> str:
    """Rec2FTP of a report (or its control) as ``0.667 (2 of 3)``: of the queries FT fixes, how many ICL fixes too."""
    return of_counts(part.get("rec2ftp"), part.get("rec2ftp_counts"), "both_fixed", "ft_fixed", undefined)


def change_recall_text(part: dict[str, Any], undefined: str = "n/a") -> str:
    """ChangeRecall as ``0.400 (2 of 5)``: of the queries ICL or FT changes, how many both change the same way."""
    return of_counts(part.get("change_recall"), part.get("change_recall_counts"), "same_change", "changed", undefined)


# Label-distribution shift rows: (key, name, the two shifts from ZSL shown beside it). Per query, not per layer.
LABEL_SHIFT_ROWS = (
    ("kl_icl_ft", "KL(ICL ‖ FT) of the label distributions", ("kl_icl_zsl", "kl_ft_zsl")),
    ("tv_icl_ft", "TV(ICL, FT) of the label distributions", ("tv_icl_zsl", "tv_ft_zsl")),
)


def _label_shift_rows(data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    shift = data.get("label_shift") or {}
    mean = lambda key: _num((shift.get(key) or {}).get("mean"))  # noqa: E731
    return [(name, mean(key), _ci(shift[key].get("ci95")), f"shift from ZSL: ICL {mean(from_icl)}, FT {mean(from_ft)}")
            for key, name, (from_icl, from_ft) in LABEL_SHIFT_ROWS if shift.get(key)]


def metric_rows(data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, value, 95% interval, baseline) rows of every metric (report.md and the Hub card)."""
    aou, am, kd = data.get("simaou", {}), data.get("simam", {}), data.get("kendall", {})
    ex = kd.get("example_level") or {}
    rows = [
        ("Rec2FTP", rec2ftp_text(data, "n/a (FT fixes no query)"), _ci(data.get("rec2ftp_ci95")), "-"),
        ("SimAOU", _num(aou.get("mean")), _ci(aou.get("ci95")), f"random vector {_num(aou.get('random_mean'))}"),
        ("SimAOU (unnormalised, Deutch et al.)", _num(aou.get("unnormalized_mean")), _ci(aou.get("unnormalized_ci95")), "-"),
        ("SimAM before finetuning cos(ICL, ZSL)", _num(am.get("before")), _ci(am.get("before_ci95")), "-"),
        ("SimAM after finetuning cos(ICL, FT)", _num(am.get("after")), _ci(am.get("after_ci95")), f"before finetuning {_num(am.get('before'))}"),
        ("SimAM delta cos(ICL-ZSL, FT-ZSL)", _num(am.get("delta")), _ci(am.get("delta_ci95")), "-"),
        ("Kendall (token level)", _num(kd.get("mean")), _ci(kd.get("ci95")), f"random scores {_num(kd.get('random_mean'))}"),
    ]
    if ex:
        rows.append(("Kendall (example level, attention mass)", _num(ex.get("mean")), _ci(ex.get("ci95")),
                     f"random scores {_num(ex.get('random_mean'))}"))
    recall = data.get("topk_recall") or {}
    for level, name in (("token_level", "tokens"), ("example_level", "demonstrations")):
        r = recall.get(level)
        if r:
            rows.append((f"top-{r.get('k')} recall ({name})", _num(r.get("mean")), _ci(r.get("ci95")),
                         f"random ranking {_num(r.get('random_mean'))}"))
    if "change_recall" in data:
        rows.append(("ChangeRecall (Deutch et al.)", change_recall_text(data, "n/a (no prediction changed)"),
                     _ci(data.get("change_recall_ci95")), "-"))
    return rows + _label_shift_rows(data)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def _header(data: dict[str, Any]) -> list[str]:
    cfg = data.get("config", {})
    start = cfg.get("start_token_used", cfg.get("start_token"))
    return [
        f"# ICL vs finetuning: {display_name(cfg)} on {cfg.get('task') or 'custom data'}",
        "",
        f"{cfg.get('n_demonstrations', '?')} demonstrations, {len(data.get('labels', []))} queries, method "
        f"`{cfg.get('method', '?')}`, learning rate {cfg.get('learning_rate', '?')}, position `{cfg.get('position', '?')}`, "
        f"seed {cfg.get('seed', '?')}, start token {start!r}. Intervals are bootstrap 95% intervals over queries.",
    ]


def _accuracy(data: dict[str, Any]) -> list[str]:
    acc, acc_ci = data["accuracy"], data.get("accuracy_ci95", {})
    rows = [[SETTING_NAMES[s], _num(acc.get(s)), _ci(acc_ci.get(s))] for s in SETTINGS]
    return ["", "## Accuracy", ""] + _table(["setting", "accuracy", "95% interval"], rows)


def _label_balance(data: dict[str, Any]) -> list[str]:
    counts = data.get("label_counts")
    if not counts:
        return []
    words = data.get("config", {}).get("label_words") or [str(i) for i in range(len(counts["gold"]))]
    predicted = counts.get("predictions", {})
    rows = [[repr(word), counts["demonstrations"][i], counts["gold"][i]] + [predicted[s][i] for s in SETTINGS]
            for i, word in enumerate(words)]
    return ["", "## Label balance", ""] + _table(["label word", "demonstrations", "gold", "ZSL", "ICL", "FT"], rows)


def _metrics(data: dict[str, Any]) -> list[str]:
    return ["", "## ICL vs finetuning metrics", ""] + _table(["metric", "value", "95% interval", "baseline"], [list(r) for r in metric_rows(data)])


_CONTROL_INTROS = {
    "untrained": ("Untrained control (Deutch et al.)",
                  "The same analysis on a randomly initialised copy of the architecture, which cannot learn in context: "
                  "metrics that score about as high here say little about ICL."),
    "shuffled_labels": ("Shuffled-label control",
                        "The same analysis of the pretrained model on the same demonstrations with their labels shuffled "
                        "({changed} of {n} got another label; the label counts are unchanged), for ICL and FT alike: "
                        "a similarity that holds on wrong labels says little about learning the task from them."),
}


def _control(data: dict[str, Any], name: str) -> list[str]:
    control = (data.get("controls") or {}).get(name)
    if not control:
        return []
    acc, c_acc = data["accuracy"], control.get("accuracy", {})
    pick = lambda d, metric, key: _num((d.get(metric) or {}).get(key))  # noqa: E731
    rows = [[f"accuracy {s.upper()}", _num(acc.get(s)), _num(c_acc.get(s))] for s in SETTINGS] + [
        ["Rec2FTP", rec2ftp_text(data), rec2ftp_text(control)],
        ["SimAOU", pick(data, "simaou", "mean"), pick(control, "simaou", "mean")],
        ["SimAM after", pick(data, "simam", "after"), pick(control, "simam", "after")],
        ["SimAM delta", pick(data, "simam", "delta"), pick(control, "simam", "delta")],
        ["Kendall", pick(data, "kendall", "mean"), pick(control, "kendall", "mean")],
        ["Kendall (example level)", pick(data.get("kendall") or {}, "example_level", "mean"),
         pick(control.get("kendall") or {}, "example_level", "mean")],
        ["top-k recall (tokens)", pick(data.get("topk_recall") or {}, "token_level", "mean"),
         pick(control.get("topk_recall") or {}, "token_level", "mean")],
    ]
    if "change_recall" in control:
        rows.append(["ChangeRecall", change_recall_text(data), change_recall_text(control)])
    rows += [[name_, pick(data.get("label_shift") or {}, key, "mean"), pick(control.get("label_shift") or {}, key, "mean")]
             for key, name_, _ in LABEL_SHIFT_ROWS if key in (control.get("label_shift") or {})]
    title, intro = _CONTROL_INTROS.get(name, (CONTROL_TITLES.get(name, name), ""))
    shuffle = control.get("shuffle") or {}
    intro = intro.format(changed=shuffle.get("changed", "?"), n=shuffle.get("n_demonstrations", "?"))
    column = CONTROL_TITLES.get(name, name).removesuffix(" control")
    return ["", f"## {title}", "", intro, ""] + _table(["metric", "pretrained", column], rows)


def _controls(data: dict[str, Any]) -> list[str]:
    return [line for name in (data.get("controls") or {}) for line in _control(data, name)]


def _verdict(data: dict[str, Any]) -> list[str]:
    table = verdict_table(data)
    if table is None:
        return []
    rows = [[cell_text(cell) for cell in row] for row in table["rows"]]
    return (["", f"## {table['question']}", ""] + _table(table["columns"], rows)
            + ["", f"Beyond: more alike than the control at alpha {table['alpha']}, by a {table['test']}. "
               "Intervals: bootstrap 95% over queries. Definitions: `docs/analysis.md`, \"Verdict\"."])


def _orders(data: dict[str, Any]) -> list[str]:
    table = orders_table(data)
    if table is None:
        return []
    orders = "; ".join(f"order {i}: {', '.join(map(str, order))}" for i, order in enumerate(table["orders"]))
    intro = (f"The same demonstrations in {table['n']} orders, the ICL prompt and the finetuning in the same order (Shen et al.; "
             f"demonstrations numbered in the main order, which is order 0 and the rest of this report): {orders}.")
    return (["", "## Demonstration orders", "", intro, ""] + _table(table["columns"], table["rows"]) + [""]
            + [f"- {line}" for line in table["agreement"]])


def _selection(data: dict[str, Any]) -> list[str]:
    selection = data.get("selection")
    if not selection:
        return []
    lines = ["", "## Hyperparameter selection on the dev split", ""]
    if selection.get("criterion"):
        lines += [selection["criterion"], ""]
    rows = [[r.get("learning_rate"), r.get("seed"), _num(r.get("zsl")), _num(r.get("icl")), _num(r.get("ft"))]
            for r in selection.get("rows", [])]
    lines += _table(["learning rate", "seed", "dev ZSL", "dev ICL", "dev FT"], rows)
    chosen = selection.get("chosen", {})
    return lines + ["", f"Chosen: learning rate {chosen.get('learning_rate')}, seed {chosen.get('seed')}; the tables above are on the test split."]


def _per_layer(data: dict[str, Any]) -> list[str]:
    aou, am, kd = data.get("simaou", {}), data.get("simam", {}), data.get("kendall", {})
    recall = data.get("topk_recall") or {}
    series = [aou.get("per_layer"), aou.get("random_per_layer"), am.get("per_layer_before"), am.get("per_layer_after"),
              am.get("per_layer_delta"), kd.get("per_layer"), (kd.get("example_level") or {}).get("per_layer"),
              kd.get("random_per_layer"), (recall.get("token_level") or {}).get("per_layer"),
              (recall.get("example_level") or {}).get("per_layer")]
    n = max((len(s) for s in series if s), default=0)
    if not n:
        return []
    rows = [[str(i)] + [_num(s[i]) if s and i < len(s) else "-" for s in series] for i in range(n)]
    header = ["layer", "SimAOU", "SimAOU random", "SimAM before", "SimAM after", "SimAM delta", "Kendall",
              "Kendall (example)", "Kendall random", "top-k recall", "top-k recall (example)"]
    lines = ["", "## Per layer", ""] + _table(header, rows)
    if "change_recall" in data or "label_shift" in data:
        lines += ["", "Rec2FTP, ChangeRecall and the label-distribution shift compare predictions and label "
                  "distributions per query, not per layer: they are in the metrics table only."]
    return lines


def _plain(value: Any) -> str:
    """A setting as a reader writes it: ``kv``, ``-`` for none, ``true``, ``1, 2``; a string whose
    spaces matter at its ends (`` Negative``) keeps its quotes."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if not value or value != value.strip() else value
    if isinstance(value, (list, tuple)) and all(v is None or isinstance(v, (str, int, float, bool)) for v in value):
        return ", ".join(_plain(v) for v in value) if value else "-"
    return json.dumps(value, ensure_ascii=False)


def _setting(value: Any) -> str:
    text = _plain(value)
    text = text if len(text) <= 200 else text[:197] + "..."
    return text.replace("|", "\\|").replace("\n", "\\n")


def _settings(data: dict[str, Any]) -> list[str]:
    cfg = data.get("config", {})
    lines = ["", "## Settings", ""] + _table(["setting", "value"], [[k, _setting(v)] for k, v in cfg.items() if k not in ("versions", "environment")])
    for title, key in (("Versions", "versions"), ("Environment", "environment")):
        if cfg.get(key):
            lines += ["", f"{title}: " + ", ".join(f"{k} {v}" for k, v in cfg[key].items())]
    notes = data.get("notes") or []
    return lines + (["", "## Notes", ""] + [f"- {n}" for n in notes] if notes else [])


def markdown(data: dict[str, Any], plots_dir: str | None) -> str:
    """report.md for a report dictionary; ``plots_dir`` links the PNGs (``None``: no plots)."""
    lines = (_header(data) + _verdict(data) + _accuracy(data) + _label_balance(data) + _metrics(data) + finetuning_section(data)
             + _controls(data) + _orders(data) + _selection(data) + _per_layer(data))
    if plots_dir is not None:
        prefix = "" if plots_dir in (".", "") else plots_dir.rstrip("/") + "/"
        lines += ["", "## Plots", ""] + [f"![{name[:-4]}]({prefix}{name})" for name in PLOT_FILES]
    return "\n".join(lines + _settings(data)) + "\n"
