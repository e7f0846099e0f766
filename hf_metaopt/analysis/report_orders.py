"""The demonstration orders as a table: one rendering of ``report["permutations"]`` for report.md and report.html.

Per headline number a row: its value in each order (order 0 is the report's main body), then its
mean, sample std, min and max over the orders; below, how alike each route predicts across orders
(``docs/analysis.md``, "Demonstration orders").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .orders import ORDER_VALUES

__all__ = ["ORDER_NAMES", "orders_table"]

ORDER_NAMES = {
    "accuracy_zsl": "accuracy ZSL", "accuracy_icl": "accuracy ICL", "accuracy_ft": "accuracy FT", "rec2ftp": "Rec2FTP",
    "change_recall": "ChangeRecall", "simaou": "SimAOU", "simaou_unnormalized": "SimAOU unnormalised",
    "simam_before": "SimAM before", "simam_after": "SimAM after", "simam_delta": "SimAM delta",
    "kendall_token": "Kendall, token level", "kendall_example": "Kendall, example level", "recall_token": "top-k recall, tokens",
    "recall_example": "top-k recall, demonstrations", "kl_icl_ft": "KL(ICL ‖ FT)", "tv_icl_ft": "TV(ICL, FT)",
    "kl_icl_zsl": "KL(ICL ‖ ZSL)", "tv_icl_zsl": "TV(ICL, ZSL)", "kl_ft_zsl": "KL(FT ‖ ZSL)", "tv_ft_zsl": "TV(FT, ZSL)",
}


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def orders_table(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"n", "orders", "columns", "rows": [[str]], "agreement": [str]}``; ``None`` for a report of one order."""
    perm = data.get("permutations")
    if not isinstance(perm, Mapping) or not perm.get("per_order"):
        return None
    per_order, spread = perm["per_order"], perm.get("spread") or {}
    columns = ["number"] + [f"order {o.get('order', i)}" for i, o in enumerate(per_order)] + ["mean", "std", "min", "max"]
    rows = []
    for name in ORDER_VALUES:
        s = spread.get(name) or {}
        rows.append([ORDER_NAMES.get(name, name)] + [_num((o.get("values") or {}).get(name)) for o in per_order]
                    + [_num(s.get(k)) for k in ("mean", "std", "min", "max")])
    agreement = perm.get("agreement") or {}
    lines = []
    for route in ("icl", "ft"):
        a = agreement.get(route) or {}
        lines.append(f"{route.upper()}: the same prediction in every order for {_num(a.get('all_orders'))} of the queries; "
                     f"two orders agree on {_num(a.get('pairwise'))} of them on average.")
    icl_ft = agreement.get("icl_ft") or {}
    if icl_ft.get("per_order"):
        lines.append("ICL and FT predict alike for " + ", ".join(_num(v) for v in icl_ft["per_order"])
                     + f" of the queries (orders 0..{len(icl_ft['per_order']) - 1}; mean {_num(icl_ft.get('mean'))}).")
    return {"n": perm.get("n"), "orders": perm.get("orders") or [], "columns": columns, "rows": rows, "agreement": lines}
