"""The finetuning's loss curve, its divergence note and the float64-rerun stability figure in every report."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
from hf_metaopt.analysis.finetune import finetuned
from hf_metaopt.analysis.notes import finetuning_notes
from hf_metaopt.analysis.prompts import PromptEncoder
from hf_metaopt.analysis.stability import update_relative_difference
from hf_metaopt.analysis.training_log import LossRecorder, demonstration_loss, finetuning_summary

from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS

PROMPT = PromptFormat(TEMPLATE, tuple(WORDS), "\n")
EXAMPLES = [[5, 17, 40, 22, 9, 101], [7, 33, 2, 90], [12, 12, 200, 54, 3]]


def llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=400, max_position_embeddings=256, bos_token_id=0, eos_token_id=0,
    )
    return LlamaForCausalLM(cfg).eval()


def analyse(model, tokenizer, **options):
    options = AnalysisOptions.from_kwargs(batch_size=2, n_bootstrap=20, **options)
    return run_analysis(model, tokenizer, DEMOS, QUERIES, PROMPT, options).report.to_dict()


def by_hand_loss(model, ids):
    with torch.no_grad():
        ids = torch.tensor([ids])
        return float(model(input_ids=ids, labels=ids).loss)


def test_one_loss_per_step_and_the_first_is_the_untrained_weights_loss():
    model = llama()
    recorder = LossRecorder()
    with finetuned(model, EXAMPLES, AnalysisOptions(learning_rate=0.5, seed=0), callbacks=[recorder]) as tuned:
        after = demonstration_loss(tuned.model, EXAMPLES)
    assert len(recorder.losses) == len(EXAMPLES)
    assert recorder.losses[0] == pytest.approx(by_hand_loss(model, EXAMPLES[0]), abs=1e-5)
    assert recorder.losses[1] != pytest.approx(by_hand_loss(model, EXAMPLES[1]), abs=1e-5)  # after one step
    before = sum(by_hand_loss(model, ids) for ids in EXAMPLES) / len(EXAMPLES)
    assert demonstration_loss(model, EXAMPLES) == pytest.approx(before, abs=1e-6)
    assert after != pytest.approx(before, abs=1e-4)


def _block(steps, before, after, lr=1e-2, agreement=1.0):
    block = finetuning_summary(steps, before, after, lr)
    block["stability"] = {"checked": True, "agreement": agreement}
    return block


@pytest.mark.parametrize("steps, before, after, reasons", [
    ([3.0, 2.8, 2.9, 2.5, 2.6, 2.4, 2.3, 2.2], 2.7, 2.1, []),  # falling
    ([3.0, 2.8, 2.9, 2.5, 2.6, 2.4, 2.3, 2.2], 2.7, 2.9, ["ended_higher"]),
    ([2.0, 2.1, 2.3, 2.5, 2.6, 2.8, 3.0, 3.2], 2.4, 2.3, ["rising"]),
    ([2.0, 2.1, 7.5, 2.0, 2.1, 2.0, 1.9, 1.9], 2.2, 2.0, ["spiking"]),
    ([2.0, float("nan"), 2.0], 2.2, float("inf"), ["non_finite"]),
    ([2.0, 2.3], 2.2, 2.1, []),  # too few steps for a trend
])
def test_divergence_criteria_and_note_on_hand_made_curves(steps, before, after, reasons):
    block = _block(steps, before, after)
    assert block["divergence"] == reasons and block["diverged"] == bool(reasons)
    notes = finetuning_notes(block)
    assert bool(notes) == bool(reasons)
    if reasons:
        assert "learning rate 0.01 diverged" in notes[0] and "e.g. 0.001" in notes[0]
    assert all(x is None or x == x for x in block["loss_per_step"])  # nan became None (JSON)


def test_stability_note_below_95_percent_agreement():
    steady = _block([2.0, 1.9, 1.8, 1.7], 2.0, 1.7, lr=3e-3, agreement=0.96)
    shaky = _block([2.0, 1.9, 1.8, 1.7], 2.0, 1.7, lr=3e-3, agreement=0.9)
    assert finetuning_notes(steady) == []
    (note,) = finetuning_notes(shaky)
    assert "90.0%" in note and "decision boundary" in note and "e.g. 0.0003" in note


def test_update_relative_difference_by_hand():
    ref = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([0.0, 4.0])}
    other = {"a": torch.tensor([3.0, 1.0]), "b": torch.tensor([0.0, 4.0])}
    assert update_relative_difference(ref, other) == pytest.approx(1 / 5)
    assert update_relative_difference({"a": torch.zeros(2)}, {"a": torch.ones(2)}) is None


def test_report_holds_the_loss_curve_and_the_stability_figure(tiny_tokenizer):
    model = llama()
    report = analyse(model, tiny_tokenizer, learning_rate=1e-6, control="untrained")
    ft = report["finetuning"]
    encoder = PromptEncoder(tiny_tokenizer, PROMPT, "auto")
    examples = [encoder.training_ids(d) for d in DEMOS]
    assert len(ft["loss_per_step"]) == len(DEMOS) == report["config"]["n_demonstrations"]
    assert ft["loss_per_step"][0] == pytest.approx(by_hand_loss(model, examples[0]), abs=1e-5)
    before = sum(by_hand_loss(model, ids) for ids in examples) / len(examples)
    assert ft["loss_before"] == pytest.approx(before, abs=1e-5)
    assert ft["learning_rate"] == 1e-6 and ft["diverged"] is False
    stability = ft["stability"]
    # at this learning rate the update is far below any margin: float64 cannot change a prediction
    assert stability["checked"] and stability["agreement"] == 1.0 and stability["n_queries"] == len(QUERIES)
    assert stability["accuracy"] == report["accuracy"]["ft"] and stability["perturbation"] == "float64 training"
    assert 0 <= stability["update_relative_difference"] < 1  # float32 rounds a tiny update by a few percent
    assert report["config"]["stability_check"] is True
    control = report["controls"]["untrained"]["finetuning"]
    assert len(control["loss_per_step"]) == len(DEMOS) and control["stability"]["checked"] is False
    assert "Finetuning" in analyse_markdown(report)


def analyse_markdown(report):
    from hf_metaopt.analysis.report import ICLAnalysisReport

    return ICLAnalysisReport(report).to_markdown(plots_dir=None)


def test_stability_check_off_omits_the_rerun(tiny_tokenizer):
    report = analyse(llama(), tiny_tokenizer, learning_rate=0.1, stability_check=False)
    assert report["finetuning"]["stability"] == {"checked": False, "reason": "off (stability_check=False)"}
    assert report["config"]["stability_check"] is False
    with pytest.raises(ValueError, match="stability_check"):
        AnalysisOptions(stability_check="yes")


def _fitted(tokenizer):
    """The tiny model fitted (Adam, a few epochs) to the demonstrations, so their loss starts low."""
    model = llama().train()
    encoder = PromptEncoder(tokenizer, PROMPT, "auto")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):
        for d in DEMOS:
            ids = torch.tensor([encoder.training_ids(d)])
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return model.eval()


def test_huge_learning_rate_diverges_with_a_note(tiny_tokenizer):
    model = _fitted(tiny_tokenizer)
    report = analyse(model, tiny_tokenizer, learning_rate=100.0)
    ft = report["finetuning"]
    assert ft["diverged"] is True and "ended_higher" in ft["divergence"] and ft["loss_after"] > ft["loss_before"]
    assert 0.0 <= ft["stability"]["agreement"] <= 1.0
    assert any("learning rate 100 diverged" in n and "e.g. 10" in n for n in report["notes"])


def test_benchmark_rows_on_a_tiny_model(tiny_tokenizer, tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ft_stability.py"
    spec = importlib.util.spec_from_file_location("ft_stability", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.measure(llama(), tiny_tokenizer, DEMOS, QUERIES, PROMPT, (1e-6, 0.1), batch_size=2, label="tiny")
    assert [r["learning_rate"] for r in rows] == [1e-6, 0.1] and all(r["model"] == "tiny" for r in rows)
    assert all(0.0 <= r["agreement"] <= 1.0 and r["n_queries"] == len(QUERIES) for r in rows)
    assert rows[0]["agreement"] == 1.0 and rows[0]["loss_before"] == rows[1]["loss_before"]  # same model, same demos
    text = bench.table(rows)
    assert text.splitlines()[0].split() == list(bench.COLUMNS) and len(text.splitlines()) == 3
    json.dumps(rows, allow_nan=False)
