"""Model cards of the pretrained arms, and pushing both arms to the Hub."""

from __future__ import annotations

from pathlib import Path

__all__ = ["card_fields", "corpus_dataset", "write_card", "push_arms", "repo_id_for"]

OFFLINE_DATASET = "hf-metaopt-offline"  # the packaged BBC News + Rotten Tomatoes text has no Hub id


def corpus_dataset(context: dict) -> tuple[str, str | None, bool]:
    """``(dataset type, config, is a Hub id)`` of an arm's corpus, for the card's model-index: the Hub
    dataset id, the local file or folder's name, or :data:`OFFLINE_DATASET`."""
    from ..model_id import is_hub_id
    from .arguments import OFFLINE_CORPUS

    corpus = context.get("corpus_id")
    if not corpus:  # results written before the corpus id was recorded
        return context.get("corpus") or "unknown", None, False
    if corpus == OFFLINE_CORPUS:
        return OFFLINE_DATASET, None, False
    if is_hub_id(corpus):
        return corpus, context.get("corpus_config"), True
    return Path(corpus).name or corpus, None, False


def _icl_lines(results: dict | None) -> list[str]:
    if not results or not results["icl"]:
        return []
    lines = ["In-context accuracy (demonstrations reduced to what fits the context):", "",
             "| task | demonstrations | accuracy (%) |", "|---|---|---|"]
    lines += [f"| {e['task']} | {e['shots']} | {100 * e['accuracy']:.1f} |" for e in results["icl"]]
    return lines + ["", f"Training throughput: {results['tokens_per_second']:.0f} tokens/s."]


def card_fields(context: dict, training_args, log_history: list[dict], results: dict | None = None,
                baseline: dict | None = None) -> dict:
    """Fields for :func:`hf_metaopt.hub.write_model_card`: description, training setup and results.

    ``baseline`` is the GPT arm's results of the same seed, shown next to a momentum arm's.
    """
    eta = context["momentum"]
    kind = "vanilla GPT arm (MomentumGPT with momentum 0, exactly GPT-2)" if eta == 0 else \
        f"MomentumGPT arm (momentum eta={eta:g})"
    last_eval = next((h["eval_loss"] for h in reversed(log_history) if "eval_loss" in h), None)
    step = log_history[-1].get("step") if log_history else 0
    status = "finished" if results else f"checkpoint at step {step}; evaluation runs when training ends"
    description = (
        f"The {kind} of the momentum-attention experiment of Dai et al. (2023), \"Why Can GPT Learn "
        f"In-Context?\" (section 5), trained from scratch with `hf-metaopt pretrain` ({status})."
    )
    a = training_args
    settings = {
        "momentum (eta)": eta, "seed": context["seed"], "block size": context["block_size"],
        "optimizer": f"AdamW betas ({a.adam_beta1}, {a.adam_beta2}), eps {a.adam_epsilon}, "
                     f"weight decay {a.weight_decay}",
        "peak learning rate": a.learning_rate, "schedule": str(getattr(a.lr_scheduler_type, "value", a.lr_scheduler_type)),
        "warmup steps": a.warmup_steps, "gradient clipping": a.max_grad_norm, "max steps": a.max_steps,
        "batch size per device": a.per_device_train_batch_size,
        "gradient accumulation": a.gradient_accumulation_steps, "dropout": context["model_args"]["dropout"],
    }
    if last_eval is not None:
        settings["last validation loss"] = round(last_eval, 4)

    def ppl_map(res):
        return {f"valid@{e['requested_context']}" + (f" (capped to {e['context']})" if e["capped"] else ""):
                e["perplexity"] for e in res["perplexity"]}

    fields = {
        "model_name": f"{context['arm']}-seed{context['seed']}",
        "description": description,
        "training_data": f"{context['corpus']}; validation documents held out (none shared with training).",
        "training_settings": settings,
        "tags": ["causal-lm", "pretraining"],
    }
    dataset_type, _, on_hub = corpus_dataset(context)
    if on_hub:
        fields["datasets"] = [dataset_type]
    if results:
        fields["perplexities"] = ppl_map(results)
        fields["notes"] = "\n".join(_icl_lines(results))
        # The model-index: validation perplexity at each context length, on the held-out documents of the corpus.
        dataset_type, dataset_config, _ = corpus_dataset(context)
        fields["eval_results"] = [
            {"task_type": "text-generation", "dataset_type": dataset_type, "dataset_name": context["corpus"],
             "dataset_config": dataset_config, "dataset_split": "validation",
             "metric_type": "perplexity", "metric_name": f"perplexity@{e['context']}", "metric_config": f"context_{e['context']}",
             "metric_value": e["perplexity"]}
            for e in results["perplexity"] if not (e["capped"] and e["context"] in
                                                    {p["context"] for p in results["perplexity"] if not p["capped"]})
        ]
        if baseline and eta != 0:
            fields["baseline_perplexities"] = ppl_map(baseline)
    return fields


def write_card(folder, context: dict, training_args, log_history: list[dict], results: dict | None = None,
               baseline: dict | None = None) -> Path:
    """Write ``folder/README.md`` for one arm (through :func:`hf_metaopt.hub.write_model_card`)."""
    from hf_metaopt import hub

    fields = card_fields(context, training_args, log_history, results, baseline)
    return hub.write_model_card(folder, **fields)


def repo_id_for(prefix: str, arm: str, seed: int, several_seeds: bool) -> str:
    """``<prefix>-<arm>`` (``-seed<seed>`` appended when the run has several seeds)."""
    return f"{prefix}-{arm}" + (f"-seed{seed}" if several_seeds else "")


def push_arms(training_args, exp_args, runs: list[dict]) -> list[str]:
    """Push every arm's ``final`` folder (model, tokenizer, card) with :func:`hf_metaopt.hub.push_model`.

    Returns the repo ids pushed."""
    from hf_metaopt import hub

    prefix = exp_args.hub_repo_prefix or training_args.hub_model_id
    several = len({r["seed"] for r in runs}) > 1
    pushed = []
    for run in runs:
        folder = Path(training_args.output_dir) / f"{run['arm']}-seed{run['seed']}" / "final"
        repo_id = repo_id_for(prefix, run["arm"], run["seed"], several)
        hub.push_model(folder, repo_id, token=training_args.hub_token, private=bool(training_args.hub_private_repo))
        pushed.append(repo_id)
    return pushed
