"""The verdict (docs/analysis.md, "Verdict"): rows from hand-made per-query values with p-values from the sign-flip
definition, and on a real run the p-values recomputed from scores.safetensors; report.md, report.html and the card open with it."""

import numpy as np
import pytest

from hf_metaopt.analysis import load_scores
from hf_metaopt.analysis.change_recall import change_indicators
from hf_metaopt.analysis.metrics import rec2ftp_indicators
from hf_metaopt.analysis.report import ICLAnalysisReport
from hf_metaopt.analysis.report_card import eval_results_from_report, render_analysis_card
from hf_metaopt.analysis.report_verdict import QUESTION, verdict_lines, verdict_table
from hf_metaopt.analysis.significance import paired_ratio_test, paired_test
from hf_metaopt.analysis.verdict import ALPHA, verdict

METRICS = ["rec2ftp", "change_recall", "simaou", "simaou_unnormalized", "simam_after", "simam_delta", "kendall_token",
           "kendall_example", "recall_token", "recall_example", "kl_icl_ft", "tv_icl_ft"]
Q, L = 5, 2


def _rows(shift: float, labels=(0, 1, 0, 1, 0)) -> dict:
    """Per-query rows of a collector: per-layer metrics at ``0.1 * q + shift`` (both layers alike), the label
    distances at ``0.5 - shift``, random baselines at 0; predictions so that FT fixes queries 0-1 and ICL query 0."""
    per_layer = np.repeat((0.1 * np.arange(Q) + shift)[:, None], L, axis=1)
    rows = {key: per_layer.copy() for key in ("simaou", "simaou_raw", "simam_after", "simam_delta", "kendall_token_level",
                                               "kendall_example_level", "recall_token_level", "recall_example_level")}
    rows["simam_before"] = per_layer - 0.05
    rows.update({f"{key}_random": np.zeros((Q, L)) for key in ("simaou", "kendall_token_level", "kendall_example_level",
                                                                 "recall_token_level", "recall_example_level")})
    rows["kl_icl_ft"] = rows["tv_icl_ft"] = np.full(Q, 0.5 - shift)
    wrong = 1 - np.array(labels)
    rows["pred_zsl"] = wrong.copy()
    rows["pred_ft"] = np.array([labels[0], labels[1], *wrong[2:]])
    rows["pred_icl"] = np.array([labels[0], *wrong[1:]])
    return rows


def test_each_metric_gets_a_row_with_its_controls_and_baseline_and_the_sign_flip_p_value():
    labels = np.array([0, 1, 0, 1, 0])
    judged = verdict(labels, _rows(0.2), {"untrained": _rows(0.0)}, kendall_queries=None, n_bootstrap=64, seed=1)
    assert judged["alpha"] == ALPHA == 0.05 and judged["controls"] == ["untrained"]
    rows = {r["metric"]: r for r in judged["rows"]}
    assert [r["metric"] for r in judged["rows"]] == METRICS
    assert all(set(r["comparisons"]) <= {"untrained", "baseline"} and "untrained" in r["comparisons"] for r in rows.values())
    assert {m for m, r in rows.items() if "baseline" in r["comparisons"]} == {
        "simaou", "simam_after", "kendall_token", "kendall_example", "recall_token", "recall_example"}
    simaou = rows["simaou"]
    assert simaou["value"] == pytest.approx(0.4) and simaou["alike"] == "higher" and simaou["n_queries"] == Q
    # A constant difference of 0.2 in all 5 queries: of the 2**5 sign patterns only the observed one reaches its mean.
    untrained = simaou["comparisons"]["untrained"]
    assert untrained["p_value"] == 1 / 32 and untrained["exact"] and untrained["beyond"] is True
    assert untrained["difference"] == pytest.approx(0.2) and untrained["value"] == pytest.approx(0.2)
    assert simaou["comparisons"]["baseline"]["name"] == "random vector" and simaou["comparisons"]["baseline"]["p_value"] == 1 / 32
    assert rows["simam_after"]["comparisons"]["baseline"]["name"] == "before finetuning"
    assert rows["simam_after"]["comparisons"]["baseline"]["difference"] == pytest.approx(0.05)
    assert simaou["beyond_all"] is True
    # Lower is alike for the label distances: 0.3 against 0.5, tested as control minus pretrained.
    kl = rows["kl_icl_ft"]
    assert kl["alike"] == "lower" and kl["comparisons"]["untrained"]["difference"] == pytest.approx(0.2)
    assert kl["comparisons"]["untrained"]["p_value"] == 1 / 32 and kl["beyond_all"] is True and "baseline" not in kl["comparisons"]
    # Rec2FTP: FT fixes queries 0 and 1, ICL query 0, in both arms: 1 of 2 each, no difference.
    rec = rows["rec2ftp"]
    assert (rec["value"], rec["counts"]) == (0.5, [1, 2]) and rec["comparisons"]["untrained"]["difference"] == 0.0
    assert rec["comparisons"]["untrained"]["p_value"] == 1.0 and rec["beyond_all"] is False


def test_the_ranking_metrics_read_the_first_kendall_queries_and_undefined_ratios_give_no_answer():
    labels = np.array([0, 1, 0, 1, 0])
    control = _rows(0.2)
    control["pred_ft"] = control["pred_zsl"].copy()  # FT fixes nothing: Rec2FTP undefined in the control
    judged = verdict(labels, _rows(0.2), {"shuffled_labels": control}, kendall_queries=3, n_bootstrap=64, seed=1)
    rows = {r["metric"]: r for r in judged["rows"]}
    assert judged["controls"] == ["shuffled_labels"]
    assert rows["kendall_token"]["n_queries"] == 3 and rows["kendall_token"]["value"] == pytest.approx(0.3)
    assert rows["kendall_token"]["comparisons"]["baseline"]["p_value"] == 1 / 8  # 2**3 patterns: not beyond at 0.05
    assert rows["kendall_token"]["comparisons"]["baseline"]["beyond"] is False
    assert rows["simaou"]["n_queries"] == Q and rows["simaou"]["comparisons"]["shuffled_labels"]["p_value"] == 1.0  # identical arms
    assert rows["rec2ftp"]["comparisons"]["shuffled_labels"]["p_value"] is None and rows["rec2ftp"]["beyond_all"] is None
    with pytest.raises(ValueError, match="unknown control"):
        verdict(labels, _rows(0.2), {"random": control}, kendall_queries=None, n_bootstrap=64, seed=1)


def test_only_the_controls_run_are_columns():
    data = {"verdict": verdict(np.array([0, 1, 0, 1, 0]), _rows(0.2), {}, kendall_queries=None, n_bootstrap=64, seed=1)}
    table = verdict_table(data)
    assert table["columns"] == ["metric", "alike when", "pretrained [95% interval]", "baseline [95% interval]", "beyond? (p)",
                                "beyond all its controls"]
    assert [row[0]["text"] for row in table["rows"]][:3] == ["Rec2FTP", "ChangeRecall", "SimAOU"]
    assert table["rows"][0][-1]["text"] == "-"  # Rec2FTP has no baseline and no control here: nothing to be beyond
    assert verdict_table({"accuracy": {}}) is None and verdict_lines({}) == []


def _scores_values(scores, name, control, n):
    return scores.per_query(name, control=control)[:n]


# The verdict's metrics as scores.safetensors names them: (name, its baseline, ranked, lower is alike).
STORED = {"simaou": ("simaou", "simaou_random", False, False), "simaou_unnormalized": ("simaou_unnormalized", None, False, False),
          "simam_after": ("simam_after", "simam_before", False, False), "simam_delta": ("simam_delta", None, False, False),
          "kendall_token": ("kendall_token", "kendall_token_random", True, False),
          "kendall_example": ("kendall_example", "kendall_example_random", True, False),
          "recall_token": ("recall_token", "recall_token_random", True, False),
          "recall_example": ("recall_example", "recall_example_random", True, False),
          "kl_icl_ft": ("kl_icl_ft", None, False, True), "tv_icl_ft": ("tv_icl_ft", None, False, True)}


def test_the_p_values_are_the_paired_tests_of_the_stored_per_query_scores(controlled_run):
    run_dir, report, options = controlled_run
    scores = load_scores(run_dir)  # an independent path: the saved file, read back
    boot = dict(n_resamples=options.n_bootstrap, seed=options.seed)
    rows = {r["metric"]: r for r in report["verdict"]["rows"]}
    assert list(rows) == METRICS and report["verdict"]["controls"] == ["untrained", "shuffled_labels"]
    labels = scores["labels"]
    for metric, (name, baseline, ranked, lower) in STORED.items():
        n = scores.meta["kendall_queries"] if ranked else scores.n_queries
        main = _scores_values(scores, name, None, n)
        arms = {c: _scores_values(scores, name, c, n) for c in ("untrained", "shuffled_labels")}
        if baseline:
            arms["baseline"] = _scores_values(scores, baseline, None, n)
        assert set(rows[metric]["comparisons"]) == set(arms), metric
        assert rows[metric]["value"] == pytest.approx(main.mean(), abs=1e-12) and rows[metric]["n_queries"] == n
        for arm, other in arms.items():
            expected = paired_test(other, main, **boot) if lower else paired_test(main, other, **boot)
            got = rows[metric]["comparisons"][arm]
            assert (got["p_value"], got["exact"]) == (expected["p_value"], expected["exact"]), (metric, arm)
            assert got["difference"] == pytest.approx(expected["difference"], abs=1e-12)
            assert got["beyond"] == (expected["p_value"] < 0.05)
        assert rows[metric]["beyond_all"] == all(c["beyond"] for c in rows[metric]["comparisons"].values())
    preds = {c: {r: scores[f"{'' if c is None else f'control/{c}/'}predictions/{r}"] for r in ("zsl", "icl", "ft")}
             for c in (None, "untrained", "shuffled_labels")}
    indicators = {
        "rec2ftp": lambda p: rec2ftp_indicators(p["zsl"] == labels, p["icl"] == labels, p["ft"] == labels),
        "change_recall": lambda p: change_indicators(p["zsl"], p["icl"], p["ft"]),
    }
    for metric, of in indicators.items():
        for control in ("untrained", "shuffled_labels"):
            expected = paired_ratio_test(*of(preds[None]), *of(preds[control]), **boot)
            got = rows[metric]["comparisons"][control]
            assert (got["p_value"], got["difference"]) == (expected["p_value"], expected["difference"]), (metric, control)
    assert rows["simaou"]["value"] == report["simaou"]["mean"] and rows["simaou"]["ci95"] == report["simaou"]["ci95"]
    assert rows["kl_icl_ft"]["value"] == report["label_shift"]["kl_icl_ft"]["mean"]
    assert rows["rec2ftp"]["value"] == report["rec2ftp"]


def test_report_md_html_and_card_open_with_the_verdict(controlled_run):
    run_dir, report, _ = controlled_run
    markdown = (run_dir / "report.md").read_text()
    sections = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert sections[0] == f"## {QUESTION}"
    table = markdown.split(f"## {QUESTION}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0] == ("| metric | alike when | pretrained [95% interval] | untrained control [95% interval] | beyond? (p) | "
                        "shuffled-label control [95% interval] | beyond? (p) | baseline [95% interval] | beyond? (p) | "
                        "beyond all its controls |")
    assert len(table) == 2 + len(METRICS) and table[2].startswith("| Rec2FTP | higher | ")
    simaou = next(r for r in report["verdict"]["rows"] if r["metric"] == "simaou")
    cell = f"{simaou['value']:.3f} [{simaou['ci95'][0]:.3f}, {simaou['ci95'][1]:.3f}]"
    assert any(line.startswith(f"| SimAOU | higher | {cell} | ") for line in table)
    assert "## Shuffled-label control" in markdown and "## Untrained control (Deutch et al.)" in markdown
    html = (run_dir / "report.html").read_text()
    assert html.index('id="verdict-table"') < html.index('id="headline-table"')
    assert html.count("<tr><td") >= len(METRICS) and QUESTION in html
    card = render_analysis_card(ICLAnalysisReport(report))
    assert f"## {QUESTION}" in card.text and card.text.index(QUESTION) < card.text.index("## Results")
    names = [r.metric_name for r in eval_results_from_report(report)]
    assert "SimAOU, shuffled-label control" in names and "SimAOU, untrained control" in names
    assert not any("p-value" in n or "beyond" in n for n in names)  # the tests are not results of the model
    lines = verdict_lines(report)
    assert len(lines) == len(METRICS) and lines[2].startswith(f"SimAOU {simaou['value']:.3f}: untrained ")
