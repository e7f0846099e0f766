"""hf-metaopt sweep: config parsing and validation, resuming, the summary, and 2 processes = 1 process."""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from hf_metaopt import cli, sweep
from hf_metaopt.analysis import AnalysisOptions
from hf_metaopt.sweep import runner

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "sweep_tiny.yaml"
OFFLINE = ROOT / "recipes" / "configs" / "sweep_offline.yaml"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, tiny_tokenizer_dir):
    """Two tiny random models (GPT-2, Llama with GQA) saved with the test tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("models")
    configs = {
        "tiny-gpt2": lambda: GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=1024)),
        "tiny-llama": lambda: LlamaForCausalLM(LlamaConfig(
            vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=0, eos_token_id=0, pad_token_id=0,
        )),
    }
    for name, build in configs.items():
        torch.manual_seed(0)
        build().save_pretrained(root / name)
        AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(root / name)
    return [str(root / name) for name in configs]


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread, as each torchrun process gets: the same floating-point sums in both runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _argv(models, out, *more) -> list[str]:
    return ["--config", str(TINY), "--models", *models, "--controls", "untrained", "--output_dir", str(out), *map(str, more)]


def _reports(out: Path) -> dict[str, dict]:
    return {p.parent.relative_to(out).as_posix(): json.loads(p.read_text()) for p in sorted(out.rglob("report.json"))}


# ------------------------------------------------------------------------ configuration


def test_shared_options_take_analysis_options_defaults_and_flags_override(tmp_path):
    args, shared = sweep.parse_args([])
    defaults = AnalysisOptions()
    for name in ("n_demonstrations", "n_queries", "split", "position", "start_token", "batch_size", "n_bootstrap", "fast"):
        assert getattr(shared, name) == getattr(defaults, name)
    assert not any(hasattr(shared, axis) for axis in sweep.GRID_AXES)
    assert (args.seeds, args.learning_rates, args.methods, args.controls) == ([defaults.seed], [defaults.learning_rate], [defaults.method], [None])

    config = tmp_path / "s.yaml"
    config.write_text("learning_rates: [1e-3, 0.01]\nseeds: [1, 2]\ncontrols: [null, untrained]\nn_queries: 50\n")
    args, shared = sweep.parse_args(["--config", str(config), "--n_queries", "60", "--controls", "none"])
    assert args.learning_rates == [0.001, 0.01] and args.seeds == [1, 2]  # YAML's "1e-3" is a string
    assert shared.n_queries == 60 and args.controls == [None]

    args, shared = sweep.parse_args(["--config", str(OFFLINE)])
    assert (args.models, args.tasks, args.seeds, args.controls) == (
        ["gemma3", "smollm2"], ["rt_sentiment", "rt_subjectivity", "bbc_news"], [1, 2, 3], ["untrained"])
    assert (args.learning_rates, args.methods) == ([defaults.learning_rate], [defaults.method])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tasks", "rt_sentiment", "nope"], r"unknown task 'nope'"),
        (["--methods", "kv", "sgd"], r"`methods`: `method` must be one of"),
        (["--learning_rates", "0.01", "-1"], r"`learning_rates`: `learning_rate` must be a number > 0"),
        (["--controls", "random"], r"`controls`: `control` must be one of"),
        (["--n_queries", "0"], r"`n_queries` must be a positive integer"),  # refused as it is parsed
        (["--seeds", "1", "1"], r"`seeds` repeats \['1'\]"),
        (["--models", "./no/such/folder"], r"no such folder"),
        (["--models", "someone/not-downloaded"], r"not in the local Hub cache"),
    ],
)
def test_bad_configs_fail_before_any_model_loads(flags, message, tmp_path, monkeypatch, tiny_models):
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("a model loaded before validation"))
    out = tmp_path / "out"
    argv = ["--config", str(TINY), "--models", tiny_models[0], "--output_dir", str(out)] + flags
    with pytest.raises(ValueError, match=message):
        sweep.main(argv)
    assert not out.exists()


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    code = cli.main(["sweep", "--config", str(TINY), "--models", "smollm2", "--tasks", "nope", "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("hf-metaopt sweep: error: unknown task 'nope'")


def test_same_model_folder_names_are_refused(tmp_path, tiny_models):
    twin = tmp_path / "elsewhere" / Path(tiny_models[0]).name
    twin.parent.mkdir()
    twin.symlink_to(tiny_models[0], target_is_directory=True)
    with pytest.raises(ValueError, match="would share the run folder name 'tiny-gpt2'"):
        sweep.main(["--config", str(TINY), "--models", tiny_models[0], str(twin), "--output_dir", str(tmp_path / "o")])


def test_the_balanced_axis_expands_the_grid_and_names_its_folders(tmp_path, tiny_models):
    from hf_metaopt.sweep.config import parse_args
    from hf_metaopt.sweep.grid import plan_sweep
    from hf_metaopt.sweep.summary import summarize
    from hf_metaopt.sweep.table import to_markdown

    args, shared = parse_args(["--config", str(TINY), "--models", tiny_models[0], "--controls", "none", "--balanced", "false", "true",
                               "--output_dir", str(tmp_path / "o")])
    assert args.balanced == [False, True] and not hasattr(shared, "balanced_demonstrations")
    plan = plan_sweep(args, shared)
    paths = [job.relative_path.as_posix() for job in plan.jobs]
    assert paths == [f"tiny-gpt2/rt_sentiment/kv-lr0.01-none{suffix}/seed-{s}" for suffix in ("", "-balanced") for s in (1, 2)]
    assert [job.options.balanced_demonstrations for job in plan.jobs] == [False, False, True, True]
    assert parse_args(["--config", str(TINY)])[0].balanced == [False]  # the paper's draw by default
    with pytest.raises(ValueError, match="`balanced` must hold true or false"):
        parse_args(["--config", str(TINY), "--balanced", "maybe"])

    fake = {"accuracy": {"zsl": 0.5, "icl": 0.75, "ft": 0.5}}
    summary = summarize([(job, fake) for job in plan.jobs], {"tasks": ["rt_sentiment"], "controls": [None], "seeds": [1, 2],
                                                              "model_labels": dict(plan.labels), "balanced": args.balanced},
                        {"n_demonstrations": 3, "n_queries": 4, "split": "test", "position": "prediction", "dtype": "float32"})
    assert [g["balanced_demonstrations"] for g in summary["groups"]] == [False, True]
    assert [a["balanced_demonstrations"] for a in summary["averages"]] == [False, True]
    md = to_markdown(summary, plot_file=None)
    assert "## Finetuning `kv`, learning rate 0.01\n" in md and "## Finetuning `kv`, learning rate 0.01, balanced demonstrations" in md


def test_the_permutations_axis_and_the_shuffled_label_control_in_folders_and_summary(tmp_path, tiny_models):
    from hf_metaopt.sweep.config import parse_args
    from hf_metaopt.sweep.grid import plan_sweep
    from hf_metaopt.sweep.summary import summarize
    from hf_metaopt.sweep.summary_html import summary_html
    from hf_metaopt.sweep.table import to_markdown

    args, shared = parse_args(["--config", str(TINY), "--models", tiny_models[0], "--controls", "null", "shuffled_labels+untrained",
                               "--permutations", "1", "3", "--output_dir", str(tmp_path / "o")])
    assert args.controls == [None, "untrained+shuffled_labels"] and args.permutations == [1, 3]
    plan = plan_sweep(args, shared)
    assert any("the null jobs are left out" in n for n in plan.notes)  # a controlled job holds the pretrained analysis
    paths = [job.relative_path.as_posix() for job in plan.jobs]
    assert paths == [f"tiny-gpt2/rt_sentiment/kv-lr0.01-untrained+shuffled_labels{suffix}/seed-{s}"
                     for suffix in ("", "-orders3") for s in (1, 2)]  # one order: the folder name of before
    assert [job.options.permutations for job in plan.jobs] == [1, 1, 3, 3]
    assert parse_args(["--config", str(TINY)])[0].permutations == [1]
    with pytest.raises(ValueError, match="`permutations`: permutations=10 asks for more orders than the 3 demonstration"):
        plan_sweep(*parse_args(["--config", str(TINY), "--models", tiny_models[0], "--permutations", "10"]))
    with pytest.raises(ValueError, match="`controls`: `control` must be one of"):
        plan_sweep(*parse_args(["--config", str(TINY), "--models", tiny_models[0], "--controls", "untrained+untrained"]))
    # A run made before the permutations option existed is that option's default: its folder is recognised, not refused.
    record = plan.jobs[0].record(args.dtype)
    del record["options"]["permutations"]
    (plan.path(plan.jobs[0])).mkdir(parents=True)
    (plan.path(plan.jobs[0]) / "report.json").write_text(json.dumps({"sweep": record}))
    assert plan.is_complete(plan.jobs[0])

    def report(seed, orders):
        """A report whose ICL accuracy over its orders has std 0.1 * seed, and its controls'."""
        acc = {"zsl": 0.5, "icl": 0.75, "ft": 0.5}
        data = {"accuracy": acc, "simaou": {"mean": 0.2}, "controls": {
            "untrained": {"accuracy": {**acc, "icl": 0.4}, "simaou": {"mean": 0.1}},
            "shuffled_labels": {"accuracy": {**acc, "icl": 0.6}, "simaou": {"mean": 0.15 + seed / 100}}}}
        if orders > 1:
            data["permutations"] = {"n": orders, "spread": {"accuracy_icl": {"std": 0.1 * seed}},
                                    "agreement": {"icl": {"all_orders": 0.5}, "ft": {"all_orders": 1.0}, "icl_ft": {"mean": 0.8}}}
        return data

    runs = [(job, report(job.options.seed, job.options.permutations)) for job in plan.jobs]
    grid = {"tasks": ["rt_sentiment"], "controls": args.controls, "seeds": [1, 2], "model_labels": dict(plan.labels),
            "permutations": [1, 3]}
    summary = summarize(runs, grid, {"n_demonstrations": 3, "n_queries": 4, "split": "test", "position": "prediction",
                                     "dtype": "float32"})
    one, three = summary["groups"]
    assert (one["permutations"], three["permutations"]) == (1, 3)
    assert three["pretrained"]["order_std_icl"]["mean"] == pytest.approx(0.15)  # the mean over seeds of each run's std
    assert three["pretrained"]["order_same_icl"]["mean"] == 0.5 and one["pretrained"]["order_std_icl"]["n"] == 0
    assert three["shuffled_labels"]["simaou"]["mean"] == pytest.approx(0.165) and three["untrained"]["icl"]["mean"] == 0.4
    md = to_markdown(summary, plot_file=None)
    assert "## Finetuning `kv`, learning rate 0.01\n" in md and "## Finetuning `kv`, learning rate 0.01, 3 demonstration orders" in md
    assert md.count("### Table 10: std over demonstration orders") == 1  # only in the section with several orders
    assert "| rt_sentiment, shuffled labels | 50.0 ± 0.0 / 50.0 ± 0.0 / 60.0 ± 0.0 |" in md and "| rt_sentiment, untrained | 50.0 ± 0.0 / 50.0 ± 0.0 / 40.0" in md
    assert "| rt_sentiment | 15.0 ± 7.1 /" in md  # the ICL accuracy's std over orders, in %, mean ± std over seeds
    orders_table = md.split("### Table 10")[1].split("### Table 11")[0]
    assert "untrained" not in orders_table and "shuffled" not in orders_table  # the controls run in one order: no rows here
    assert "with the untrained control and the shuffled labels control; demonstration orders: 1, 3." in md
    page = summary_html(summary, tmp_path / "o")
    assert 'class="shuffled_labels"' in page and "shuffled labels control" in page and "Table 12: agreement across" in page


def test_the_methods_axis_takes_the_layer_causal_methods(tmp_path, tiny_models):
    from hf_metaopt.sweep.config import parse_args
    from hf_metaopt.sweep.grid import plan_sweep

    args, shared = parse_args(["--config", str(TINY), "--models", tiny_models[1], "--controls", "none", "--seeds", "1",
                               "--methods", "kv", "layer_causal", "layer_causal_lora", "--output_dir", str(tmp_path / "o")])
    plan = plan_sweep(args, shared)
    assert [job.relative_path.as_posix() for job in plan.jobs] == [
        f"tiny-llama/rt_sentiment/{m}-lr0.01-none/seed-1" for m in ("kv", "layer_causal", "layer_causal_lora")]
    assert [(job.options.method, job.options.base_method) for job in plan.jobs] == [
        ("kv", "kv"), ("layer_causal", "kv"), ("layer_causal_lora", "lora")]


def test_grid_progress_puts_analysis_bars_below_every_grid_bar():
    import io

    from tqdm.auto import tqdm

    from hf_metaopt.sweep.progress import GridProgress

    with GridProgress(3, index=1, count=2) as bar:
        assert bar.bar.pos == -1  # this process's grid bar on line 1
        inner = tqdm(total=1, file=io.StringIO())  # as the analysis creates its bar
        assert inner.pos == 3  # below both grid bars and process 0's analysis bar
        inner.close()


def test_one_process_runs_every_job_on_the_requested_device():
    """Not launched: one process, every job its own, nothing pinned; the split between several is checked below."""
    from hf_metaopt.sweep.processes import SweepProcesses

    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    processes = SweepProcesses("cpu")
    assert (processes.layout.index, processes.layout.count, processes.layout.is_main) == (0, 1, True)
    assert processes.share(list(range(5))) == list(range(5)) and processes.device.type == "cpu"
    with processes.jobs():
        processes.wait_for_everyone()
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == before


def test_a_process_takes_its_share_then_the_others_from_their_ends(monkeypatch):
    """The order a process tries the pending jobs in: its own contiguous share, then the rest last-first, where the
    processes that own them arrive last."""
    from hf_metaopt.sweep.processes import SweepProcesses

    processes = SweepProcesses("cpu")
    jobs = [f"job{i}" for i in range(6)]
    monkeypatch.setattr(processes, "share", lambda items: list(items[2:4]))  # process 1 of 3
    assert processes.order(jobs) == ["job2", "job3", "job5", "job4", "job1", "job0"]


def test_a_worker_keeps_one_gpu_round_robin(monkeypatch):
    from hf_metaopt.sweep import processes

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    processes.pin_gpu(1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    processes.pin_gpu(2)  # more processes than GPUs: they share
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    processes.pin_gpu(1)  # no GPU: stays on CPU
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


def test_several_processes_need_a_device_of_their_own(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="with several processes use auto"):
        sweep.main(["--config", str(TINY), "--models", "smollm2", "--device", "cuda:1", "--output_dir", str(tmp_path / "o")])


# ------------------------------------------------------------------------ runs


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, tiny_models, one_thread):
    """One process: the sweep fails in its second job, then a rerun finishes it.

    Returns the output folder, the jobs each attempt analysed, the models the rerun loaded,
    and report.json of the first job as written by the first attempt.
    """
    out = tmp_path_factory.mktemp("single") / "sweep"
    analysed, loads = [], []
    real_analyze, real_load = runner.analyze_task, runner.load_model

    def failing_second(model, tokenizer, task, options, **kwargs):
        analysed.append(("first", kwargs["extra"]["sweep"]["run"]))
        if len(analysed) == 2:
            raise RuntimeError("injected failure")
        return real_analyze(model, tokenizer, task, options, **kwargs)

    def recording(model, tokenizer, task, options, **kwargs):
        analysed.append(("rerun", kwargs["extra"]["sweep"]["run"]))
        return real_analyze(model, tokenizer, task, options, **kwargs)

    def counting_load(args):
        loads.append(args.model)
        return real_load(args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "analyze_task", failing_second)
        with pytest.raises(RuntimeError, match="injected failure"):
            sweep.main(_argv(tiny_models, out))
        first_report = next(out.rglob("report.json")).read_bytes()
        leftovers = sorted(p.name for p in out.rglob(".*"))
        patch.setattr(runner, "analyze_task", recording)
        patch.setattr(runner, "load_model", counting_load)
        summary = sweep.main(_argv(tiny_models, out))
    return {"out": out, "analysed": analysed, "loads": loads, "first_report": first_report, "leftovers": leftovers, "summary": summary}


def test_a_failed_sweep_resumes_and_reuses_finished_runs(single_run, tiny_models):
    out, analysed = single_run["out"], single_run["analysed"]
    runs = [f"{Path(m).name}/rt_sentiment/kv-lr0.01-untrained/seed-{s}" for m in tiny_models for s in (1, 2)]
    assert analysed == [("first", runs[0]), ("first", runs[1])] + [("rerun", r) for r in runs[1:]]
    assert single_run["leftovers"] == []  # no lock, no half-written folder from the failed job
    assert (out / runs[0] / "report.json").read_bytes() == single_run["first_report"]
    assert single_run["loads"] == tiny_models  # each model loaded once for all its jobs
    assert sorted(_reports(out)) == sorted(runs)
    assert all((out / run / "scores.safetensors").is_file() for run in runs)  # every run keeps its per-query scores
    for name in sweep.SUMMARY_FILES:
        assert (out / name).is_file()

    # Everything done: a rerun loads nothing and rewrites the same summary.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("finished runs must be reused"))
        again = sweep.main(_argv(tiny_models, out))
    assert again["groups"] == single_run["summary"]["groups"]


def test_runs_made_with_another_batch_size_are_reused_and_jobs_take_the_batch_size_given(single_run, tiny_models):
    """The runs were made with batch_size 4 (sweep_tiny.yaml); batching never changes a number."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("finished runs must be reused"))
        sweep.main(_argv(tiny_models, single_run["out"], "--batch_size", "auto"))
    plan = sweep.plan_sweep(*sweep.parse_args(_argv(tiny_models, single_run["out"], "--batch-size", "auto")))
    assert {job.options.batch_size for job in plan.jobs} == {"auto"} and plan.pending() == []


def test_a_folder_from_other_settings_is_refused(single_run, tiny_models, monkeypatch):
    monkeypatch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("a model loaded before validation"))
    with pytest.raises(ValueError, match="holds a run with other settings"):
        sweep.main(_argv(tiny_models, single_run["out"], "--n_queries", 3))


def test_summary_holds_mean_and_std_over_seeds(single_run, tiny_models):
    out, summary = single_run["out"], single_run["summary"]
    reports = _reports(out)
    label = Path(tiny_models[1]).name
    group = next(g for g in summary["groups"] if g["model_label"] == label)
    seeds = [reports[f"{label}/rt_sentiment/kv-lr0.01-untrained/seed-{s}"] for s in (1, 2)]
    assert group["seeds"] == [1, 2] and group["control"] == "untrained"
    for name, values in {
        "icl": [r["accuracy"]["icl"] for r in seeds],
        "simaou_random": [r["simaou"]["random_mean"] for r in seeds],
        "simam_delta": [r["simam"]["delta"] for r in seeds],
        "kendall_example": [r["kendall"]["example_level"]["mean"] for r in seeds],
        "kl_icl_ft": [r["label_shift"]["kl_icl_ft"]["mean"] for r in seeds],
        "rec2ftp_ft_fixed": [r["rec2ftp_counts"]["ft_fixed"] for r in seeds],
    }.items():
        assert group["pretrained"][name]["mean"] == pytest.approx(statistics.fmean(values))
        assert group["pretrained"][name]["std"] == pytest.approx(statistics.stdev(values))
    untrained = [r["controls"]["untrained"]["kendall"]["mean"] for r in seeds]
    assert group["untrained"]["kendall"]["mean"] == pytest.approx(statistics.fmean(untrained))
    average = next(a for a in summary["averages"] if a["model_label"] == label)
    assert average["pretrained"]["icl"] == pytest.approx(group["pretrained"]["icl"]["mean"])  # one task

    md = (out / "summary.md").read_text()
    for heading in ("Table 1: accuracy", "Table 2: Rec2FTP", "Table 3: SimAOU", "Table 4: SimAM", "Table 5: Kendall",
                    "Table 7: ChangeRecall", "Table 8: label-distribution shift", "Table 9: label-distribution shift, TV"):
        assert heading in md
    # Rec2FTP and ChangeRecall with their counts summed over the seeds that define them.
    for title, key, num, den in (("Table 2: Rec2FTP", "rec2ftp_counts", "both_fixed", "ft_fixed"),
                                 ("Table 7: ChangeRecall", "change_recall_counts", "same_change", "changed")):
        lines = md.split(f"### {title}")[1].split("###")[0].splitlines()
        column = next(line for line in lines if line.startswith("| task |")).split(" | ").index(label)
        cell = next(line for line in lines if line.startswith("| rt_sentiment |")).split(" | ")[column]
        expected = f"({sum(r[key][num] for r in seeds)} of {sum(r[key][den] for r in seeds)})"
        assert cell.endswith(expected), (cell, expected)
    assert re.search(r"\| rt_sentiment \| .+ \| .+ \| 65\.9 / 73\.0 / 89\.0 \(MR\) \| 60\.9 / 80\.0 / 91\.3 \(MR\) \|", md)
    assert "| rt_sentiment, untrained |" in md
    import matplotlib.image

    assert matplotlib.image.imread(out / "summary.png").ndim == 3


def test_summary_html_holds_the_tables_the_curves_and_a_link_to_every_run(single_run, tiny_models):
    out = single_run["out"]
    page = (out / "summary.html").read_text()
    links = re.findall(r'<a href="([^"]+)">report\.html</a>', page)
    assert sorted(links) == sorted(f"{run}/report.html" for run in _reports(out))  # relative, one per run
    assert all((out / link).is_file() for link in links)
    md = (out / "summary.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| rt_sentiment |"))  # Table 1's first row
    for cell in row.strip("|").split("|")[1:]:
        assert f">{cell.strip()}</td>" in page
    data = json.loads(re.search(r'id="page-data">(.*?)</script>', page, re.S).group(1))
    ids = [chart["id"] for chart in data["charts"]]
    assert ids == [*(f"bars-0-{f}" for f in range(5)), "layers-0-0", "layers-0-1"]  # 5 metric families, then each model
    curves = data["charts"][5]["figure"]  # the first model's per-layer curves
    simaou = next(t for t in curves["data"] if t.get("name") == "rt_sentiment" and t.get("xaxis") in (None, "x"))
    label = Path(tiny_models[0]).name
    seeds = [r["simaou"]["per_layer"] for run, r in _reports(out).items() if run.startswith(f"{label}/") and "untrained" in run]
    assert simaou["y"] == pytest.approx([statistics.fmean(layer) for layer in zip(*seeds)])  # mean over seeds per layer


def test_mean_std_leaves_out_undefined_values():
    from hf_metaopt.sweep.summary import mean_std

    assert mean_std([0.5, None, 0.7]) == {"mean": pytest.approx(0.6), "std": pytest.approx(statistics.stdev([0.5, 0.7])), "n": 2}
    assert mean_std([0.25]) == {"mean": 0.25, "std": None, "n": 1}
    assert mean_std([None]) == {"mean": None, "std": None, "n": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_lines(launcher: str, port: int) -> list[list[str]]:
    """The launch lines of the sweep module's docstring, on this host's loopback address, one per "machine"."""
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]
    sweep_module = ["-m", "hf_metaopt.cli", "sweep"]
    if launcher == "torchrun":
        return [[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                 "--master_port", str(port), *sweep_module]]
    if launcher == "accelerate":
        return [[*accelerate, "--num_machines", "1", *sweep_module]]
    # Two machines of one process each: what accelerate launch runs on each node of a cluster.
    return [[*accelerate, "--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", *sweep_module]
            for rank in (0, 1)]


class _Launches:
    """Launch lines started side by side, their output in files; ended (launchers first, which end their workers) on exit."""

    def __init__(self, lines: list[list[str]], folder: Path):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.logs = [folder / f"launch-{i}.log" for i in range(len(lines))]
        self.procs = []
        for line, log in zip(lines, self.logs):
            with open(log, "w") as sink:
                self.procs.append(subprocess.Popen(line, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    def __enter__(self) -> "_Launches":
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # torchrun's agent ends its workers on SIGTERM
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def wait(self, index: int, timeout: float) -> int:
        return self.procs[index].wait(timeout=timeout)

    def output(self) -> str:
        return "".join(log.read_text() for log in self.logs)


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate", "accelerate-2-machines"])
def test_two_processes_write_the_same_runs_as_one(single_run, tiny_models, tmp_path, launcher):
    """The launch lines of the sweep module's docstring start 2 workers on CPU (one machine, or two "machines" on
    this host's loopback address) that share the jobs: each runs its share, and every job runs once."""
    out = tmp_path / "two"
    lines = [[*line, *_argv(tiny_models, out, "--progress", "true")] for line in _launch_lines(launcher, _free_port())]
    with _Launches(lines, tmp_path) as launches:
        codes = [launches.wait(i, timeout=600) for i in range(len(lines))]
        output = launches.output()
    assert codes == [0] * len(lines), output[-3000:]
    loads = re.findall(r"\[process (\d)\] loaded (\S+) on cpu for (\d) job", output)
    first = {}
    for process, model, count in loads:
        first.setdefault(process, (model, count))
    assert first == {"0": (tiny_models[0], "2"), "1": (tiny_models[1], "2")}  # each its own share's model first, for its share

    one, two = _reports(single_run["out"]), _reports(out)
    assert sorted(re.findall(r"\[process \d\] (\S+): ZSL", output)) == sorted(one)  # every job run once, by one process
    assert sorted(one) == sorted(two)
    for run in one:
        assert two[run] == one[run], run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"] == single_run["summary"]["groups"]


def _lock_holder(lock: Path, timeout: float) -> int:
    """The pid written into a run folder's lock file (``RunFolder``) once it appears."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            holder = lock.read_text().split()
        except FileNotFoundError:
            holder = []
        if holder:
            return int(holder[0])
        time.sleep(0.02)
    pytest.fail(f"no process took {lock} within {timeout} s")


def test_a_killed_machine_leaves_the_other_finishing_and_a_rerun_completes(single_run, tiny_models, tmp_path):
    """Two "machines": the main process is killed (SIGKILL) in its first job. The other machine's process runs its
    share and the jobs the dead one left, and exits without waiting for it; the summary, which the main process writes,
    is missing until a rerun, which runs only what is missing (here nothing) and writes it."""
    import signal

    out = tmp_path / "two"
    lines = [[*line, *_argv(tiny_models, out)] for line in _launch_lines("accelerate-2-machines", _free_port())]
    first = out / Path(tiny_models[0]).name / "rt_sentiment" / "kv-lr0.01-untrained" / ".seed-1.lock"
    with _Launches(lines, tmp_path) as launches:
        victim = _lock_holder(first, timeout=300)
        status = Path(f"/proc/{victim}/status").read_text()
        assert f"PPid:\t{launches.procs[0].pid}\n" in status  # a worker of machine 0's launcher: process 0
        os.kill(victim, signal.SIGKILL)
        assert launches.wait(0, timeout=120) != 0  # machine 0's launch fails
        assert launches.wait(1, timeout=400) == 0, launches.output()[-3000:]  # machine 1's finishes: no barrier waits for the dead
        output = launches.output()
    assert "[process 1] no job left for this process" in output
    assert not (out / "summary.json").exists()
    missing = [run for run in _reports(single_run["out"]) if not (out / run / "report.json").is_file()]

    analysed = []
    with pytest.MonkeyPatch.context() as patch:
        real = runner.analyze_task
        patch.setattr(runner, "analyze_task", lambda *a, **k: analysed.append(k["extra"]["sweep"]["run"]) or real(*a, **k))
        summary = sweep.main(_argv(tiny_models, out))
    assert analysed == missing
    one, two = _reports(single_run["out"]), _reports(out)
    assert sorted(two) == sorted(one) and all(two[run] == one[run] for run in one)
    assert summary["groups"] == single_run["summary"]["groups"]


def test_jobs_another_sweep_finished_or_holds_are_skipped(single_run, tiny_models, tmp_path, capsys):
    """Two sweeps on one output_dir: a job the other finished after this one listed it, or is running, is skipped."""
    import shutil
    from types import SimpleNamespace

    from hf_metaopt.runs import RunFolder
    from hf_metaopt.sweep.config import parse_args
    from hf_metaopt.sweep.grid import plan_sweep

    out = tmp_path / "sweep"
    plan = plan_sweep(*parse_args(_argv(tiny_models[:1], out)))
    first, second = plan.pending()
    shutil.copytree(single_run["out"] / first.relative_path, out / first.relative_path)  # finished by "the other sweep"
    analysed = []
    with pytest.MonkeyPatch.context() as patch, RunFolder(plan.path(second)):  # "the other sweep" is writing the second
        patch.setattr(runner, "analyze_task", lambda *a, **k: analysed.append(a) or pytest.fail("nothing is left to run"))
        patch.setattr(runner, "load_model", lambda *a, **k: pytest.fail("no model is needed"))
        runner.run_jobs(plan, [first])
        patch.setattr(runner, "load_model", lambda *a, **k: SimpleNamespace(model=SimpleNamespace(device="cpu")))
        runner.run_jobs(plan, [second])
    err = capsys.readouterr().err
    assert "finished meanwhile by another process or sweep; skipped" in err and "skipped for now, another run" in err
    assert "is writing" in err
    assert not analysed and not (out / second.relative_path).exists()


def test_a_one_process_accelerate_launch_is_named(monkeypatch):
    """accelerate's single-process launcher (plain --num_processes 2 without GPUs) sets MASTER_ADDR but starts one
    process: the sweep says how to get several workers instead of silently running one."""
    from hf_metaopt.sweep.processes import one_process_launch_note

    for name in ("ACCELERATE_MIXED_PRECISION", "MASTER_ADDR", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert one_process_launch_note() is None  # not launched
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert one_process_launch_note() is None  # accelerate launch --num_processes 1
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert "--multi_gpu" in one_process_launch_note()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert one_process_launch_note() is None  # the multi-process launcher did start 2
