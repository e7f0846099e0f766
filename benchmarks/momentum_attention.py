"""Speed of MomentumGPT's momentum attention, printed as ratios (one run, one process, same shapes).

    python benchmarks/momentum_attention.py            # several minutes on a shared 2-core CPU
    python benchmarks/momentum_attention.py --quick    # smaller repetition counts

1. Training step (forward + backward) of MomentumGPT (eta > 0) vs the same-size GPT2LMHeadModel, both sdpa,
   at sequence lengths 256, 1024, 2048 (target ratio <= 1.10). MomentumGPT at eta = 0 is shown too: the
   difference between the two MomentumGPT rows is the momentum term itself.
2. The momentum term alone (chunked decay matrices) vs the naive per-position loop.
3. Decoding with the cache: time per new token at context 64 vs 1024, and the momentum-state update alone
   (it must not grow with the context).

Timings are medians of repetitions of the process's CPU time (`time.process_time`) with one torch thread, so
that other processes on a shared machine inflate neither side (`--wall --threads N` for wall-clock time); the
compared runs alternate (A, B, A, B, ...) so that a drift in machine state hits both alike. Read the ratios,
not the seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel

from hf_metaopt.models.momentum_gpt import MomentumGPTConfig, MomentumGPTForCausalLM, momentum_term

LAYERS, HIDDEN, HEADS, VOCAB, ETA = 4, 256, 4, 8192, 0.9


def build_models(max_len: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            n_layer=LAYERS, n_embd=HIDDEN, n_head=HEADS, vocab_size=VOCAB, n_positions=max_len,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        ),
    )
    gpt2.set_attn_implementation("sdpa")
    models = {"gpt2": gpt2}
    for name, eta in (("momentum_gpt eta=0", 0.0), (f"momentum_gpt eta={ETA}", ETA)):
        model = MomentumGPTForCausalLM(
            MomentumGPTConfig(
                num_hidden_layers=LAYERS, hidden_size=HIDDEN, num_attention_heads=HEADS, vocab_size=VOCAB,
                max_position_embeddings=max_len, momentum=eta,
                resid_dropout=0.0, embd_dropout=0.0, attention_dropout=0.0,
            )
        )
        model.set_attn_implementation("sdpa")
        models[name] = model
    return models


clock = time.process_time


def alternating_medians(fns: dict[str, callable], repeats: int) -> dict[str, float]:
    for fn in fns.values():  # warm-up
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def train_step(model: torch.nn.Module, ids: torch.Tensor) -> callable:
    def step():
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()

    return step


def bench_training(models, lengths, repeats) -> None:
    print(f"\n1. training step (forward + backward), {LAYERS} layers, d={HIDDEN}, {HEADS} heads, vocab {VOCAB}, "
          "batch 1")
    print(f"{'seq':>6} {'gpt2 s':>9} {'eta=0 s':>9} {'eta>0 s':>9} {'eta=0/gpt2':>11} {'eta>0/gpt2':>11}")
    for model in models.values():
        model.train()
    names = list(models)
    for length in lengths:
        ids = torch.randint(0, VOCAB, (1, length))
        med = alternating_medians({n: train_step(models[n], ids) for n in names}, repeats[length])
        base = med["gpt2"]
        print(
            f"{length:>6} {base:>9.3f} {med[names[1]]:>9.3f} {med[names[2]]:>9.3f} "
            f"{med[names[1]] / base:>11.3f} {med[names[2]] / base:>11.3f}"
        )


def naive_momentum(values: torch.Tensor, eta: float) -> torch.Tensor:
    m = torch.zeros_like(values[:, 0])
    out = []
    for t in range(values.shape[1]):
        out.append(m)
        m = eta * (m + values[:, t])
    return torch.stack(out, 1)


def bench_momentum_term(repeats: int) -> None:
    print(f"\n2. momentum term alone, [1, T, {HIDDEN}] values, eta={ETA}: naive loop time / chunked time")
    for length in (256, 1024, 2048):
        values = torch.randn(1, length, HIDDEN)
        torch.testing.assert_close(momentum_term(values, ETA)[0], naive_momentum(values, ETA), rtol=1e-4, atol=1e-4)
        med = alternating_medians(
            {"chunked": lambda: momentum_term(values, ETA), "naive": lambda: naive_momentum(values, ETA)}, repeats
        )
        print(
            f"   T={length:>5}: chunked {med['chunked'] * 1e3:8.3f} ms, naive {med['naive'] * 1e3:8.2f} ms, "
            f"speed-up {med['naive'] / med['chunked']:7.1f}x"
        )


@torch.no_grad()
def bench_decoding(model: MomentumGPTForCausalLM, contexts, new_tokens: int, repeats: int) -> None:
    print(f"\n3. decoding with the cache (eta={model.config.momentum}), {new_tokens} new tokens, per-token times")
    model.eval()
    per_token, state_update = {}, {}
    for context in contexts:
        ids = torch.randint(0, VOCAB, (1, context))

        def decode():
            cache = DynamicCache(config=model.config)
            out = model(ids, cache=cache, use_cache=True)
            token = out.logits[:, -1:].argmax(-1)
            start = clock()
            for _ in range(new_tokens):
                token = model(token, cache=cache, use_cache=True).logits[:, -1:].argmax(-1)
            return (clock() - start) / new_tokens, cache

        times = []
        for _ in range(repeats):
            seconds, cache = decode()
            times.append(seconds)
        per_token[context] = statistics.median(times)

        state = cache.layers[0].momentum_state
        value = torch.randn(1, 1, HIDDEN)
        update = lambda: momentum_term(value, model.config.momentum, state)  # noqa: E731
        for _ in range(10):
            update()
        samples = []
        for _ in range(repeats):
            start = clock()
            for _ in range(200):
                update()
            samples.append((clock() - start) / 200)
        state_update[context] = statistics.median(samples)
        print(
            f"   context {context:>5}: {per_token[context] * 1e3:7.2f} ms / token (whole model), "
            f"momentum-state update {state_update[context] * 1e6:6.1f} us / token / layer"
        )
    lo, hi = contexts
    print(f"   ratio {hi}/{lo}: whole step {per_token[hi] / per_token[lo]:.2f}, "
          f"momentum-state update {state_update[hi] / state_update[lo]:.2f} (flat = O(1) in the context)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of process CPU time")
    args = parser.parse_args()
    global clock
    clock = time.perf_counter if args.wall else time.process_time
    torch.set_num_threads(args.threads)
    lengths = (256, 1024, 2048)
    repeats = {256: 5, 1024: 5, 2048: 3} if args.quick else {256: 9, 1024: 7, 2048: 5}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{'wall-clock' if args.wall else 'process CPU'} time, medians"
    )
    models = build_models(max(lengths))
    bench_training(models, lengths, repeats)
    bench_momentum_term(5 if args.quick else 9)
    bench_decoding(models[f"momentum_gpt eta={ETA}"], (64, 1024), new_tokens=16 if args.quick else 32, repeats=3)


if __name__ == "__main__":
    main()
