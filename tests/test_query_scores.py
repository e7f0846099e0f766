"""Per-query scores (scores.safetensors): the report's means from the stored rows, the file format, the loader."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, pipeline

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, QueryScores, load_scores, run_analysis
from hf_metaopt.analysis.query_scores import SCORES_FILE, exported_name
from hf_metaopt.analysis.report import PLOT_FILES, ICLAnalysisReport
from hf_metaopt.commands.analyze import parse
from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS

DATA = Path(__file__).parent / "data"
PROMPT = PromptFormat(TEMPLATE, tuple(WORDS), "\n")


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=256,
                                      bos_token_id=0, eos_token_id=0)).eval()


@pytest.fixture(scope="module")
def saved_run(tiny_tokenizer_dir, tmp_path_factory):
    """A tiny run with the untrained control, Kendall over the first 3 of 5 queries, 2 inspected; saved."""
    options = AnalysisOptions(learning_rate=0.1, batch_size=2, n_bootstrap=20, control="untrained", seed=3,
                              kendall_queries=3, n_inspect=2, stability_check=False)
    result = run_analysis(tiny_gpt2(), AutoTokenizer.from_pretrained(tiny_tokenizer_dir), DEMOS, QUERIES, PROMPT, options)
    folder = result.report.save_pretrained(tmp_path_factory.mktemp("scores") / "run")
    return result, folder


def _check_summary(summary: dict, arrays: dict, prefix: str, n: int | None = None) -> None:
    """``summary``'s per_layer and mean are the means over queries, then over layers, of ``prefix`` arrays."""
    per_layer = arrays[prefix][:n].mean(axis=0)
    assert summary["per_layer"] == per_layer.tolist() and summary["mean"] == float(per_layer.mean())
    if f"{prefix}_random" in arrays:
        random = arrays[f"{prefix}_random"][:n].mean(axis=0)
        assert summary["random_per_layer"] == random.tolist() and summary["random_mean"] == float(random.mean())


def _check_part(report: dict, arrays: dict, prefix: str, n_kendall: int) -> None:
    labels = arrays["labels"]
    preds = {k: arrays[f"{prefix}predictions/{k}"] for k in ("zsl", "icl", "ft")}
    for k, pred in preds.items():
        assert np.array_equal(pred, arrays[f"{prefix}logprobs/{k}"].argmax(axis=1))
        assert report["accuracy"][k] == float((pred == labels).mean())
    fixed = (preds["ft"] == labels) & (preds["zsl"] != labels)
    expected = float((fixed & (preds["icl"] == labels)).sum() / fixed.sum()) if fixed.any() else None
    assert report["rec2ftp"] == expected
    m = lambda name: f"{prefix}metric/{name}"  # noqa: E731
    simaou = report["simaou"]
    _check_summary({"per_layer": simaou["per_layer"], "mean": simaou["mean"], "random_per_layer": simaou["random_per_layer"],
                    "random_mean": simaou["random_mean"]}, arrays, m("simaou"))
    raw = arrays[m("simaou_unnormalized")].mean(axis=0)
    assert simaou["unnormalized_per_layer"] == raw.tolist() and simaou["unnormalized_mean"] == float(raw.mean())
    for part in ("before", "after", "delta"):
        values = arrays[m(f"simam_{part}")].mean(axis=0)
        assert report["simam"][f"per_layer_{part}"] == values.tolist() and report["simam"][part] == float(values.mean())
    _check_summary(report["kendall"], arrays, m("kendall_token"), n_kendall)
    _check_summary(report["kendall"]["example_level"], arrays, m("kendall_example"), n_kendall)
    for level in ("token", "example"):
        _check_summary(report["topk_recall"][f"{level}_level"], arrays, m(f"recall_{level}"), n_kendall)


def test_stored_scores_reproduce_the_reports_means_exactly(saved_run):
    _, folder = saved_run
    report = json.loads((folder / "report.json").read_text())
    scores = load_scores(folder)
    arrays = scores.arrays
    assert arrays["labels"].tolist() == report["labels"] == [q["label"] for q in QUERIES]
    assert {k: arrays[f"predictions/{k}"].tolist() for k in ("zsl", "icl", "ft")} == report["predictions"]
    n_kendall = scores.meta["kendall_queries"]
    assert n_kendall == report["kendall"]["n_queries"] == 3 and len(report["labels"]) == 5
    _check_part(report, arrays, "", n_kendall)
    _check_part(report["controls"]["untrained"], arrays, "control/untrained/", n_kendall)
    assert scores.meta["controls"] == ["untrained"]
    # per_query is the per-query layer mean the bootstrap resamples; its mean over queries is the report's mean
    assert scores.per_query("simaou").mean() == pytest.approx(report["simaou"]["mean"], abs=1e-15)
    assert scores.layer("simam_delta", 1).mean() == pytest.approx(report["simam"]["per_layer_delta"][1], abs=1e-15)


def test_returned_scores_are_the_stored_ones_and_not_part_of_the_report(saved_run):
    result, folder = saved_run
    assert result.report.scores is result.scores
    loaded = ICLAnalysisReport.from_pretrained(folder)
    assert loaded == result.report and "scores" not in loaded.to_dict()
    assert "scores" not in json.loads((folder / "report.json").read_text())
    for stored in (loaded.scores, load_scores(folder / SCORES_FILE), ICLAnalysisReport.from_pretrained(folder / "report.json").scores):
        assert stored.arrays.keys() == result.scores.arrays.keys() and stored.meta == result.scores.meta
        for name, array in result.scores.arrays.items():
            assert stored[name].dtype == array.dtype and np.array_equal(stored[name], array), name


def test_meta_names_the_tokens_texts_and_run(saved_run):
    result, _ = saved_run
    meta, arrays = result.scores.meta, result.scores.arrays
    n_tokens = arrays["inspect/icl_mass"].shape[-1]
    assert len(meta["demo_tokens"]) == len(meta["demo_owner"]) == n_tokens
    # the tokens decoded one by one spell each demonstration (start token and separators are not demonstration tokens)
    for i, text in enumerate(meta["demonstrations"]):
        assert "".join(t for t, o in zip(meta["demo_tokens"], meta["demo_owner"]) if o == i) == text
    assert meta["demonstrations"][0] == "Review: a gripping film Sentiment: Positive"
    assert meta["queries"] == [TEMPLATE.format(**q) for q in QUERIES] and meta["label_words"] == WORDS
    assert (meta["layers"], meta["heads"], meta["n_inspect"]) == (2, 4, 2) and meta["windowed_layers"] == []
    assert meta["model"] == "GPT2LMHeadModel" and meta["seed"] == 3 and meta["method"] == "kv"
    assert arrays["inspect/query_index"].tolist() == [0, 1]
    assert arrays["inspect/icl_mass_heads"].shape == (2, 2, 4, n_tokens) and arrays["inspect/visible"].all()
    assert arrays["inspect/icl_mass"].dtype == np.float32 and arrays["inspect/visible"].dtype == np.bool_


def test_pipeline_returns_scores_only_when_asked(tiny_tokenizer, tmp_path):
    analyzer = pipeline("icl-analysis", model=tiny_gpt2(), tokenizer=tiny_tokenizer)
    kwargs = dict(template=TEMPLATE, label_words=WORDS, learning_rate=0.1, n_bootstrap=5, stability_check=False, n_inspect=0)
    plain = analyzer(DEMOS, QUERIES[:3], **kwargs)
    assert plain.scores is None  # save_pretrained then writes none (test_a_0_1_report_without_scores_...)

    report = analyzer(DEMOS, QUERIES[:3], return_scores=True, **kwargs)
    assert report == plain and isinstance(report.scores, QueryScores)
    assert not [name for name in report.scores.arrays if name.startswith("inspect/")] and report.scores.meta["n_inspect"] == 0
    stored = load_scores(report.save_pretrained(tmp_path / "with"))
    assert stored.arrays.keys() == report.scores.arrays.keys()
    assert all(np.array_equal(stored[k], v) for k, v in report.scores.arrays.items())
    with pytest.raises(ValueError, match="`return_scores` must be True or False"):
        analyzer(DEMOS, QUERIES[:3], return_scores="yes", **kwargs)


def test_a_0_1_report_without_scores_still_loads_and_renders(tmp_path):
    report = ICLAnalysisReport.from_pretrained(DATA / "report_v0.1.json")
    assert report.scores is None
    run = report.save_pretrained(tmp_path / "old")
    assert sorted(p.name for p in run.iterdir()) == sorted(["report.json", "report.md", "report.html", *PLOT_FILES])
    assert 'id="no-scores"' in (run / "report.html").read_text()  # the page renders, without the explorer
    assert "SimAOU" in (run / "report.md").read_text() and all((run / name).stat().st_size > 1000 for name in PLOT_FILES)
    assert ICLAnalysisReport.from_pretrained(run).scores is None
    with pytest.raises(FileNotFoundError, match="Older runs have no per-query scores"):
        load_scores(run)


def test_scores_of_500_queries_are_kilobytes_per_query(tiny_tokenizer):
    queries = [{**q, "text": f"{q['text']} {i}"} for i in range(100) for q in QUERIES]
    options = AnalysisOptions(learning_rate=0.1, batch_size=50, n_bootstrap=1, stability_check=False)
    scores = run_analysis(tiny_gpt2(), tiny_tokenizer, DEMOS, queries, PROMPT, options).scores
    n_queries, n_layers, n_labels, n_tokens = 500, 2, 2, scores["inspect/icl_mass"].shape[-1]
    per_query = {k: v for k, v in scores.arrays.items() if not k.startswith("inspect/")}
    for name, array in per_query.items():
        assert array.shape in ((n_queries,), (n_queries, n_layers), (n_queries, n_labels)), name
    assert sum(a.nbytes for a in per_query.values()) <= 1024 * n_queries  # under a kilobyte per query on this model
    # the per-token arrays hold the first n_inspect queries only, whatever the number of queries
    assert scores["inspect/query_index"].tolist() == list(range(16))
    assert scores["inspect/icl_mass_heads"].shape == (16, n_layers, 4, n_tokens)
    assert all(a.shape[0] == 16 for k, a in scores.arrays.items() if k.startswith("inspect/"))


# --------------------------------------------------------------------- the file and the loader, without a model

def hand_scores() -> QueryScores:
    arrays = {
        "labels": np.array([0, 1]), "predictions/icl": np.array([1, 1]), "logprobs/icl": np.array([[-1.0, -0.5], [-2.0, -0.1]]),
        "metric/simaou": np.array([[1.0, 2.0], [3.0, 5.0]]), "metric/kl_icl_ft": np.array([0.25, 0.75]),
        "control/untrained/metric/simaou": np.array([[0.0, 1.0], [1.0, 1.0]]),
        "inspect/visible": np.array([[[True, False]]]), "inspect/icl_mass": np.array([[[0.5, 0.0]]], dtype=np.float32),
    }
    return QueryScores(arrays, {"demo_tokens": ["Revi", "ü"], "n_inspect": 1})


def test_collector_keys_get_their_documented_names_and_new_keys_a_generic_one():
    assert exported_name("pred_icl") == "predictions/icl" and exported_name("logprobs_ft") == "logprobs/ft"
    assert exported_name("simaou_raw") == "metric/simaou_unnormalized" and exported_name("simam_delta") == "metric/simam_delta"
    assert exported_name("kendall_token_level") == "metric/kendall_token"
    assert exported_name("recall_example_level_random") == "metric/recall_example_random"
    assert exported_name("demo_visible") == "visible/demo_tokens" and exported_name("own_hidden") == "visible/own_hidden"
    assert exported_name("kl_icl_ft") == "metric/kl_icl_ft"  # a row a later version adds to the collector


def test_round_trip_keeps_arrays_dtypes_and_meta(tmp_path):
    scores = hand_scores()
    path = scores.save(tmp_path)
    assert path == tmp_path / SCORES_FILE and [p.name for p in tmp_path.iterdir()] == [SCORES_FILE]  # no temporary left
    loaded = QueryScores.load(path)
    assert loaded.meta == {"demo_tokens": ["Revi", "ü"], "n_inspect": 1}
    assert loaded["labels"].dtype == np.int64 and loaded["inspect/visible"].dtype == np.bool_
    assert loaded["inspect/icl_mass"].dtype == np.float32 and loaded["metric/simaou"].dtype == np.float64
    assert all(np.array_equal(loaded[k], v) for k, v in scores.arrays.items())
    assert QueryScores.load(tmp_path).n_queries == 2


def test_reading_per_query_per_layer_and_as_a_table():
    scores = hand_scores()
    assert scores.per_query("simaou").tolist() == [1.5, 4.0] and scores.per_query("metric/simaou").tolist() == [1.5, 4.0]
    assert scores.per_query("kl_icl_ft").tolist() == [0.25, 0.75]  # no layers: as stored
    assert scores.per_query("simaou", control="untrained").tolist() == [0.5, 1.0]
    assert scores.layer("simaou", 1).tolist() == [2.0, 5.0] and scores.layer("simaou", -1).tolist() == [2.0, 5.0]
    assert scores.metrics() == ["simaou", "kl_icl_ft"] and scores.metrics("untrained") == ["simaou"]
    frame = scores.to_pandas()
    assert len(frame) == 4 + 2 + 4  # simaou [2, 2], kl [2], the control's simaou [2, 2]; no predictions or inspect rows
    row = frame[(frame.metric == "metric/simaou") & frame.control.isna() & (frame["query"] == 1) & (frame.layer == 1)]
    assert row.value.tolist() == [5.0]
    kl = frame[frame.metric == "metric/kl_icl_ft"]
    assert kl.layer.isna().all() and kl.value.tolist() == [0.25, 0.75]
    assert frame[frame.control == "untrained"].value.tolist() == [0.0, 1.0, 1.0, 1.0]
    with pytest.raises(KeyError, match="no per-query metric 'simam'.*'simaou'"):
        scores.per_query("simam")
    with pytest.raises(ValueError, match="has no layers"):
        scores.layer("kl_icl_ft", 0)
    with pytest.raises(IndexError, match="the model has 2 layers"):
        scores.layer("simaou", 2)


def test_files_that_are_not_scores_are_refused_with_the_fix(tmp_path):
    from safetensors.numpy import save_file

    with pytest.raises(FileNotFoundError, match=f"{SCORES_FILE} does not exist.*rerun the analysis"):
        QueryScores.load(tmp_path)
    save_file({"x": np.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ValueError, match="not hf-metaopt's per-query scores"):
        QueryScores.load(tmp_path / "weights.safetensors")
    save_file({"x": np.zeros(2)}, str(tmp_path / "new.safetensors"), metadata={"hf_metaopt": "{}", "hf_metaopt_format": "99"})
    with pytest.raises(ValueError, match="newer than this hf-metaopt reads.*upgrade"):
        QueryScores.load(tmp_path / "new.safetensors")
    (tmp_path / SCORES_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        QueryScores.load(tmp_path)
    with pytest.raises(TypeError, match="numbers or booleans"):
        QueryScores({"labels": np.array(["a"])})


@pytest.mark.parametrize("value", [-1, True, 1.5, None])
def test_n_inspect_is_validated(value):
    with pytest.raises(ValueError, match="`n_inspect` must be an integer >= 0"):
        AnalysisOptions(n_inspect=value)


def test_n_inspect_flag():
    assert parse(["--n-inspect", "0"])[2].n_inspect == 0 and parse([])[2].n_inspect == 16
    with pytest.raises(ValueError, match="--n-inspect must be an integer >= 0"):
        parse(["--n-inspect", "-3"])
