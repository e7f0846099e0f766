"""Run the momentum-attention experiment: both arms with ``transformers.Trainer``, then evaluate.

Every arm (eta = 0, the GPT baseline, and each eta of the sweep) and seed shares the
tokenizer, the packed data, the data order, the initial weights and the schedule; only
``momentum`` differs. Each run writes ``<output_dir>/<arm>-seed<seed>/`` (Trainer checkpoints with
their cards, ``results.json``, and ``final/``: model, tokenizer, card); the comparison of all runs goes to
``<output_dir>/comparison.{md,json}`` and ``loss_curves.png``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from transformers import Trainer, TrainingArguments, default_data_collator, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..fileio import atomic_write_json
from .arguments import DataArguments, ExperimentArguments, ModelArguments
from .callbacks import ModelCardCallback, ThroughputCallback
from .cards import write_card
from .corpus import decontaminate, load_corpus, pack_blocks
from .evaluation import icl_accuracy, perplexity_by_context
from .table import arm_name, write_comparison
from .tokenizer import load_or_train_tokenizer

__all__ = ["run_experiment", "build_model", "arm_values", "prepare_data", "train_arm", "run_settings", "check_settings",
           "RESULTS_FILE", "FINAL_DIR", "SETTINGS_FILE"]

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
FINAL_DIR = "final"  # the trained model, tokenizer and card, apart from the checkpoints
SETTINGS_FILE = "settings.json"  # what every arm and the tokenizer of output_dir were made with
# The document split and the tokenizer use this seed whatever the training seeds, so all
# seeds of a sweep see the same validation documents and the same vocabulary.
SPLIT_SEED = 0
_RESUME_LAST = {"true", "last", "auto", "1", "yes"}


def arm_values(model_args: ModelArguments) -> list[float]:
    """The momentum of each arm: 0 (vanilla GPT) first, then the sweep's etas, without repeats."""
    return sorted({0.0, *(float(eta) for eta in model_args.momentum)})


def build_model(model_args: ModelArguments, momentum: float, tokenizer):
    """A freshly initialised MomentumGPT of the configured size (``momentum=0`` is GPT-2)."""
    from ..models.momentum_gpt import MomentumGPTConfig, MomentumGPTForCausalLM

    config = MomentumGPTConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=model_args.max_position_embeddings,
        hidden_size=model_args.hidden_size,
        num_hidden_layers=model_args.num_hidden_layers,
        num_attention_heads=model_args.num_attention_heads,
        intermediate_size=model_args.intermediate_size,
        resid_dropout=model_args.dropout,
        embd_dropout=model_args.dropout,
        attention_dropout=model_args.dropout,
        momentum=momentum,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return MomentumGPTForCausalLM(config)


def _icl_query_texts(exp_args: ExperimentArguments, seed: int) -> list[str]:
    from ..tasks.prepare import prepare

    texts = []
    for task in exp_args.icl_tasks:
        _, queries, _ = prepare(task, n_demonstrations=1, n_queries=exp_args.icl_queries, seed=seed)
        texts += [str(v) for q in queries for k, v in q.items() if isinstance(v, str)]
    return texts


def prepare_data(data_args: DataArguments, exp_args: ExperimentArguments, training_args: TrainingArguments):
    """Corpus split, tokenizer (trained and saved under ``output_dir/tokenizer``) and packed blocks.

    The main process works first and the others then load its saved tokenizer.
    Returns ``(tokenizer, train_blocks, validation_blocks, validation_text, description)``.
    """
    out = Path(training_args.output_dir)
    with training_args.main_process_first(desc="corpus, tokenizer and packing"):
        splits = load_corpus(data_args, seed=SPLIT_SEED)
        train = splits.train
        if exp_args.icl_tasks:
            train = decontaminate(train, _icl_query_texts(exp_args, SPLIT_SEED))
        if not data_args.streaming and len(train) == 0:
            raise ValueError("corpus: no training document is left after filtering; use a larger corpus")
        tokenizer = load_or_train_tokenizer(
            out / "tokenizer",
            (ex["text"] for ex in train),
            data_args.tokenizer_name,
            data_args.tokenizer_vocab_size,
            data_args.tokenizer_train_documents,
        )
        num_proc = data_args.preprocessing_num_workers
        train_blocks = pack_blocks(train, tokenizer, data_args.block_size, num_proc)
        validation_blocks = pack_blocks(splits.validation, tokenizer, data_args.block_size, num_proc)
    if not data_args.streaming and len(train_blocks) == 0:
        raise ValueError(
            f"corpus: the training text makes no full block of block_size={data_args.block_size} tokens; "
            "use more text or a smaller --block_size"
        )
    if len(validation_blocks) == 0:
        raise ValueError(
            f"validation_documents: the held-out text makes no full block of {data_args.block_size} tokens; "
            "hold out more documents"
        )
    return tokenizer, train_blocks, validation_blocks, splits.validation, splits.description


def _resume_path(training_args: TrainingArguments, arm_dir: Path) -> str | None:
    value = training_args.resume_from_checkpoint
    if not value:
        return None
    if str(value).lower() in _RESUME_LAST:
        return get_last_checkpoint(str(arm_dir)) if arm_dir.is_dir() else None
    return value


def _evaluate_arm(trainer, tokenizer, validation_text, exp_args, context: dict, final_eval: dict, throughput, seed: int) -> dict:
    """One arm's results: curves, throughput, perplexity by context length and in-context accuracy."""
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    history = trainer.state.log_history
    return {
        **context,
        "global_step": trainer.state.global_step,
        "final_eval_loss": final_eval["eval_loss"],
        "tokens_per_second": throughput.tokens_per_second or 0.0,
        "eval_curve": [[h["step"], h["eval_loss"]] for h in history if "eval_loss" in h],
        "train_curve": [[h["step"], h["loss"]] for h in history if "loss" in h],
        "perplexity": perplexity_by_context(
            unwrapped, tokenizer, validation_text, exp_args.eval_context_lengths,
            batch_size=trainer.args.per_device_eval_batch_size,
        ),
        "icl": icl_accuracy(unwrapped, tokenizer, exp_args.icl_tasks, exp_args.icl_shots,
                            exp_args.icl_queries, seed) if exp_args.icl_tasks else [],
    }


def train_arm(model_args, data_args, exp_args, training_args, momentum: float, seed: int, data,
              callbacks=(), baseline: dict | None = None) -> dict | None:
    """Train and evaluate one arm for one seed; returns (and saves) its results (``None`` off the main process).

    ``data`` is :func:`prepare_data`'s tuple; ``baseline`` the GPT arm's results of this seed,
    shown in a momentum arm's card.
    Resumes from the arm's last checkpoint when ``training_args.resume_from_checkpoint``
    is ``"last"``/``"true"`` (or the given checkpoint path).
    """
    tokenizer, train_blocks, validation_blocks, validation_text, description = data
    arm = arm_name(momentum)
    arm_dir = Path(training_args.output_dir) / f"{arm}-seed{seed}"
    # Trainer pickles its arguments whole into every checkpoint and final/ (training_args.bin):
    # they must not hold the Hub token, which only push_arms needs (it reads training_args').
    args = dataclasses.replace(
        training_args, output_dir=str(arm_dir), seed=seed, push_to_hub=False, resume_from_checkpoint=None, hub_token=None,
    )
    if exp_args.curve_eval_blocks is not None:
        validation_blocks = validation_blocks.select(range(min(exp_args.curve_eval_blocks, len(validation_blocks))))
    set_seed(seed)  # same initial weights for every arm of this seed
    model = build_model(model_args, momentum, tokenizer)

    tokens_per_step = (
        args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size * data_args.block_size
    )
    throughput = ThroughputCallback(tokens_per_step)
    context = {"arm": arm, "momentum": momentum, "seed": seed, "corpus": description,
               "corpus_id": data_args.corpus, "corpus_config": data_args.corpus_config,
               "model_args": dataclasses.asdict(model_args), "block_size": data_args.block_size}

    def card(folder, state, results=None):
        write_card(folder, context=context, training_args=args, log_history=state.log_history, results=results,
                   baseline=baseline)

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_blocks,
        eval_dataset=validation_blocks,
        data_collator=default_data_collator,
        processing_class=tokenizer,
        callbacks=[throughput, ModelCardCallback(card), *callbacks],
    )
    trainer.train(resume_from_checkpoint=_resume_path(training_args, arm_dir))
    final_eval = trainer.evaluate()
    final_dir = arm_dir / FINAL_DIR
    trainer.save_model(str(final_dir))

    results = None
    if trainer.is_world_process_zero():
        results = _evaluate_arm(trainer, tokenizer, validation_text, exp_args, context, final_eval, throughput, seed)
        atomic_write_json(arm_dir / RESULTS_FILE, results)
        card(final_dir, trainer.state, results)
    trainer.accelerator.wait_for_everyone()
    return results


# Settings that do not change what a finished arm holds: new etas or seeds only add arms, and
# these only change how the work is spread or shown.
_FREE_SETTINGS = {"momentum", "preprocessing_num_workers"}
_TRAINING_SETTINGS = (
    "max_steps", "num_train_epochs", "learning_rate", "lr_scheduler_type", "warmup_steps",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "per_device_train_batch_size",
    "gradient_accumulation_steps", "fp16", "bf16",
)
_EXPERIMENT_SETTINGS = ("eval_context_lengths", "curve_eval_blocks", "icl_tasks", "icl_shots", "icl_queries")


def _plain(value):
    value = getattr(value, "value", value)  # enums (lr_scheduler_type)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def run_settings(model_args: ModelArguments, data_args: DataArguments, exp_args: ExperimentArguments,
                 training_args: TrainingArguments) -> dict:
    """The settings a finished arm (and the run's tokenizer) depends on, as plain JSON values.

    The etas and seeds are left out: adding one to a rerun only adds arms.
    """
    settings = {f.name: _plain(getattr(a, f.name)) for a in (model_args, data_args) for f in dataclasses.fields(a)
                if f.name not in _FREE_SETTINGS}
    settings.update({name: _plain(getattr(exp_args, name)) for name in _EXPERIMENT_SETTINGS})
    settings.update({name: _plain(getattr(training_args, name)) for name in _TRAINING_SETTINGS})
    return settings


def _recorded_settings(out: Path) -> dict | None:
    """What ``out`` was made with: its settings file, else (older folders) the model sizes of a finished arm."""
    path = out / SETTINGS_FILE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    for done in sorted(out.glob(f"*/{RESULTS_FILE}")):
        result = json.loads(done.read_text(encoding="utf-8"))
        model_args = {k: v for k, v in result.get("model_args", {}).items() if k not in _FREE_SETTINGS}
        return {**model_args, "block_size": result.get("block_size")}
    return None


def check_settings(model_args: ModelArguments, data_args: DataArguments, exp_args: ExperimentArguments,
                   training_args: TrainingArguments) -> None:
    """Refuse an ``output_dir`` whose finished arms or tokenizer were made with other settings.

    Raises:
        ValueError: one line naming each setting that differs, both values, and the fix.
    """
    out = Path(training_args.output_dir)
    settings = run_settings(model_args, data_args, exp_args, training_args)
    recorded = _recorded_settings(out) if out.is_dir() else None
    if recorded is not None:
        changed = [f"{name} {recorded[name]!r} -> {settings[name]!r}" for name in settings
                   if name in recorded and recorded[name] != settings[name]]
        if changed:
            raise ValueError(
                f"{out} holds runs made with other settings ({', '.join(changed)}); its finished arms and tokenizer "
                f"would be reused as they are: choose another --output_dir, or delete the folder {out} to start over."
            )


def _record_settings(model_args, data_args, exp_args, training_args) -> None:
    out = Path(training_args.output_dir)
    if training_args.process_index == 0 and not (out / SETTINGS_FILE).is_file():
        atomic_write_json(out / SETTINGS_FILE, run_settings(model_args, data_args, exp_args, training_args))


def run_experiment(model_args: ModelArguments, data_args: DataArguments, exp_args: ExperimentArguments,
                   training_args: TrainingArguments, callbacks=()) -> dict | None:
    """Train every arm for every seed, evaluate them and write the comparison table.

    Runs that already finished (their ``results.json`` exists) are reused, so an
    interrupted sweep continues where it stopped; an ``output_dir`` made with other settings
    (:func:`check_settings`) is refused first. Returns the comparison summary on the main
    process (``None`` on the others).
    """
    check_settings(model_args, data_args, exp_args, training_args)
    data = prepare_data(data_args, exp_args, training_args)
    _record_settings(model_args, data_args, exp_args, training_args)
    seeds = exp_args.seeds or [training_args.seed]
    runs = []
    for seed in seeds:
        baseline = None
        for momentum in arm_values(model_args):  # eta = 0 first: it is the others' baseline
            done = Path(training_args.output_dir) / f"{arm_name(momentum)}-seed{seed}" / RESULTS_FILE
            if done.exists():
                logger.info("reusing finished run %s", done.parent)
                result = json.loads(done.read_text())
            else:
                result = train_arm(model_args, data_args, exp_args, training_args, momentum, seed, data,
                                   callbacks, baseline)
            if momentum == 0:
                baseline = result
            runs.append(result)
    if not training_args.should_save:  # not the main process
        return None
    summary = write_comparison(runs, training_args.output_dir)
    if training_args.push_to_hub:
        from .cards import push_arms

        push_arms(training_args, exp_args, runs)
    return summary
