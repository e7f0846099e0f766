"""A plain reference for the ICL-vs-finetuning analysis, written from the definitions alone.

Sources: the definitions in ``docs/analysis.md`` (prompts, the three settings, the metrics,
after Dai et al. 2023 and the reference code, microsoft/LMOps ``understand_icl``; ChangeRecall
after Deutch et al. 2024; the label shift after Shen et al. 2024). Nothing
here imports or copies ``hf_metaopt.analysis``: the tests compare the engine with this module.

Everything is done the slow, obvious way: one query at a time, full prompts (no prefix
cache, no batching, no padding), eager attention with the model's own mask, plain Python
loops, metrics in float64.

- Prompts: every segment is tokenized on its own (``add_special_tokens=False``) and the
  ids concatenated. ``d_i = template.format(**ex) + label_words[label]``; ICL =
  ``[start] + d_1 + sep + ... + d_k + sep + query``; ZSL = ``[start] + query``; each FT
  training example = ``[start] + d_i``. ``start`` is ``[start_token_id]`` or nothing.
- Capture: :func:`reference_attention` is registered in transformers' attention
  interface under :data:`REFERENCE_ATTN` (with the eager mask function under the same
  name). It computes ``scores = (q @ k^T) * scaling``, soft-caps them when the model
  passes ``softcap``, adds the model's own mask, softmaxes and applies the weights to
  the values (GQA keys/values repeated), and records q, the scores and the mask per
  layer. A forward hook on each attention module records its output (after the output
  projection, before the residual).
- FT: a deep copy trained by a hand-written ``torch.optim.SGD`` loop on the K/V
  projections only (see :func:`finetune_kv`).
- Metrics per (query, layer) at the position (the last prompt token, or the first token
  of the first label word appended): SimAOU (normalised and not), SimAM before / after /
  delta over the query's own visible tokens, Kendall over the visible demonstration
  tokens and top-k recall, at token level (scores) and example level (each demonstration's
  softmax attention mass); a key is visible when the model's own mask lets the position
  attend it, which is how sliding windows enter. Then means over queries per layer and over
  layers; Rec2FTP and ChangeRecall (with their counts) over the predictions; per query the
  label distributions (softmax of the label-word scores) and the KL / TV between ICL and FT and
  of each from ZSL, then their means over queries.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import kendalltau
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

REFERENCE_ATTN = "reference_eager"

_LISTENERS: list["Recorder"] = []  # the recorder of the forward pass in progress (at most one)


# --------------------------------------------------------------------------- attention
def reference_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None, **kwargs):
    """Eager attention that records what the metrics read.

    ``query`` (batch, heads, q_len, head_dim); ``key``/``value`` (batch, kv_heads, k_len,
    head_dim), repeated ``heads // kv_heads`` times (kv head g serves query heads
    g*r .. g*r+r-1); ``attention_mask`` the model's additive mask (batch, 1, q_len, k_len).
    scores = (q @ k^T) * scaling, then ``tanh(scores / softcap) * softcap`` when
    ``softcap`` is given; weights = softmax(scores + mask); output = weights @ v, returned
    as (batch, q_len, heads, head_dim) with the weights. Other kwargs (``sliding_window``,
    ...) are ignored: the window is already in the model's mask.
    """
    if attention_mask is None:
        raise AssertionError("the reference expects the model's own (eager) mask; got None")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    repeats = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(repeats, dim=1)
    value = value.repeat_interleave(repeats, dim=1)
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    mask = attention_mask[:, :, :, : key.shape[-2]]
    weights = torch.softmax((scores + mask).to(torch.promote_types(query.dtype, torch.float32)), dim=-1).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    if _LISTENERS:
        _LISTENERS[-1].record_attention(module, query, scores, mask, scaling)
    return output, weights


def register_reference_attention() -> None:
    """Register :func:`reference_attention` and transformers' eager mask under ``REFERENCE_ATTN``."""
    AttentionInterface.register(REFERENCE_ATTN, reference_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(REFERENCE_ATTN, eager_mask)


def reference_copy(model):
    """A deep copy of ``model`` in eval mode that attends through :func:`reference_attention`."""
    register_reference_attention()
    twin = copy.deepcopy(model)
    twin.set_attn_implementation(REFERENCE_ATTN)
    if twin.config._attn_implementation != REFERENCE_ATTN:
        raise AssertionError(f"could not set the reference attention on {type(model).__name__}")
    return twin.eval()


def attention_modules(model) -> list:
    """The self-attention module of every layer, in layer order (class names ending in 'Attention')."""
    found = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    if len(found) != model.config.num_hidden_layers:
        raise AssertionError(f"found {len(found)} attention modules for {model.config.num_hidden_layers} layers")
    return found


class Recorder:
    """Records one forward pass (batch 1), per layer: ``q`` (heads, len, head_dim), the
    scaled (soft-capped) pre-softmax ``scores`` (heads, len, len), the additive ``mask``
    (len, len), the ``scaling`` of the scores and the attention module's ``output`` (len,
    hidden), all detached."""

    def __init__(self, model):
        self.modules = attention_modules(model)
        self.layer_of = {id(m): i for i, m in enumerate(self.modules)}
        self.layers: list[dict] = [{} for _ in self.modules]
        self._hooks: list = []

    def record_attention(self, module, query, scores, mask, scaling) -> None:
        layer = self.layers[self.layer_of[id(module)]]
        layer["scaling"] = float(scaling)
        layer["q"] = query[0].detach().clone()
        layer["scores"] = scores[0].detach().clone()
        layer["mask"] = mask[0, 0].detach().clone()

    def _record_output(self, module, args, output) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        self.layers[self.layer_of[id(module)]]["output"] = hidden[0].detach().clone()

    def __enter__(self) -> "Recorder":
        self._hooks = [m.register_forward_hook(self._record_output) for m in self.modules]
        _LISTENERS.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _LISTENERS.remove(self)
        for hook in self._hooks:
            hook.remove()


# --------------------------------------------------------------------------- prompts
@dataclass
class Prompts:
    """Token ids of one analysis under the documented protocol.

    ``prefix`` = start + d_1 + sep + ... + d_k + sep (each query's ICL prompt is
    ``prefix + queries[j]``); ``demo_positions[i]`` the indices of d_i's tokens in the
    prefix; ``train[i]`` = start + d_i; ``start`` is ``[start_token_id]`` or ``[]``.
    """

    start: list[int]
    separator: list[int]
    demos: list[list[int]]
    train: list[list[int]]
    prefix: list[int]
    demo_positions: list[list[int]]
    queries: list[list[int]]
    label_words: list[list[int]]

    def icl(self, j: int) -> list[int]:
        return self.prefix + self.queries[j]

    def zsl(self, j: int) -> list[int]:
        return self.start + self.queries[j]


def build_prompts(tokenizer, template, label_words, separator, demonstrations, queries, start_token_id) -> Prompts:
    """Tokenize each segment on its own and concatenate the ids (contract 3's protocol)."""

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    start = [] if start_token_id is None else [int(start_token_id)]
    sep = encode(separator)
    demos = [encode(template.format(**ex) + label_words[ex["label"]]) for ex in demonstrations]
    prefix, positions = list(start), []
    for d in demos:
        positions.append(list(range(len(prefix), len(prefix) + len(d))))
        prefix += d + sep
    return Prompts(
        start=start, separator=sep, demos=demos, train=[start + d for d in demos], prefix=prefix,
        demo_positions=positions, queries=[encode(template.format(**q)) for q in queries],
        label_words=[encode(w) for w in label_words],
    )


def check_alignment(prompts: Prompts) -> None:
    """Assert that the ICL prefix's tokens at the demonstration positions are the FT
    training examples' tokens with the start dropped, in order, and that everything else
    in the prefix is the start token or a separator."""
    n_start = len(prompts.start)
    for positions, train in zip(prompts.demo_positions, prompts.train):
        assert [prompts.prefix[p] for p in positions] == train[n_start:]
    demo_set = {p for positions in prompts.demo_positions for p in positions}
    rest = [t for p, t in enumerate(prompts.prefix) if p not in demo_set]
    assert rest == prompts.start + prompts.separator * len(prompts.demos)
    assert prompts.prefix[:n_start] == prompts.start and all(p >= n_start for p in demo_set)


# --------------------------------------------------------------------------- prediction
@torch.no_grad()
def label_scores(model, prompt: list[int], label_words: list[list[int]]) -> list[float]:
    """Per label word, the mean log-probability of the word's tokens after ``prompt`` (one forward pass per word)."""
    means = []
    for word in label_words:
        ids = torch.tensor([prompt + word])
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        steps = [logprobs[len(prompt) - 1 + t, tok] for t, tok in enumerate(word)]
        means.append(float(sum(steps)) / len(word))
    return means


def predict(model, prompt: list[int], label_words: list[list[int]]) -> int:
    """argmax over label words of the mean log-probability of the word's tokens after ``prompt``."""
    return int(np.argmax(label_scores(model, prompt, label_words)))


@torch.no_grad()
def capture(model, prompt: list[int], first_label_token: int, position: str) -> tuple[list[dict], int]:
    """Per layer, the records at the analysed position of one forward pass, and that position.

    ``position="prediction"``: the last prompt token; ``"label"``: ``first_label_token``
    appended and read there. Each layer's record holds float64 numpy arrays: ``q``
    (heads, head_dim), ``scores`` (heads, keys), ``visible`` (keys,) bool (the model's
    mask lets the position attend the key), ``output`` (hidden,), ``scaling`` (float).
    """
    ids = prompt + [first_label_token] if position == "label" else list(prompt)
    pos = len(ids) - 1
    with Recorder(model) as rec:
        model(input_ids=torch.tensor([ids]))
    records = []
    for layer in rec.layers:
        mask = layer["mask"][pos]
        records.append({
            "q": layer["q"][:, pos].double().numpy(),
            "scores": layer["scores"][:, pos].double().numpy(),
            "visible": (mask > torch.finfo(mask.dtype).min / 2).numpy(),
            "output": layer["output"][pos].double().numpy(),
            "scaling": layer["scaling"],
        })
    return records, pos


# --------------------------------------------------------------------------- finetuning
def kv_parameters(model) -> list[tuple[torch.nn.Parameter, torch.Tensor | None]]:
    """The attention key/value parameters of every layer, each with a gradient mask.

    Separate ``k_proj``/``v_proj``: weights and biases, mask None. GPT-2's fused
    ``c_attn`` (Conv1D, weight (in, 3E), output columns [Q | K | V]): weight and bias,
    with a mask that zeroes the Q part so only the K and V columns move.
    """
    params = []
    for module in attention_modules(model):
        if hasattr(module, "k_proj") and hasattr(module, "v_proj"):
            for proj in (module.k_proj, module.v_proj):
                params += [(p, None) for p in (proj.weight, proj.bias) if p is not None]
        elif hasattr(module, "c_attn"):
            embed = module.c_attn.weight.shape[1] // 3
            for p in (module.c_attn.weight, module.c_attn.bias):
                keep = torch.ones_like(p)
                keep[..., :embed] = 0.0
                params.append((p, keep))
        else:
            raise AssertionError(f"no K/V projections found in {type(module).__name__}")
    return params


def finetune_kv(model, train_ids: list[list[int]], learning_rate: float):
    """A deep copy of ``model`` finetuned on ``train_ids`` by plain SGD, and the query
    vectors of every training step.

    Only :func:`kv_parameters` train (no momentum, no weight decay, constant
    ``learning_rate``, one epoch, batch 1, examples in the given order); the loss of a
    step is the model's causal-LM loss ``model(ids, labels=ids).loss``. Returns
    ``(ft_model, step_queries)`` with ``step_queries[i][layer]`` = q (heads, len_i,
    head_dim) of example i in the forward of its own step, before its update.
    """
    ft = reference_copy(model)
    for p in ft.parameters():
        p.requires_grad_(False)
    trainable = kv_parameters(ft)
    for p, _ in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD([p for p, _ in trainable], lr=learning_rate, momentum=0.0, weight_decay=0.0)
    ft.train()
    step_queries = []
    for ids in train_ids:
        x = torch.tensor([ids])
        with Recorder(ft) as rec:
            loss = ft(input_ids=x, labels=x).loss
        optimizer.zero_grad()
        loss.backward()
        for p, keep in trainable:
            if keep is not None:
                p.grad.mul_(keep)
        optimizer.step()
        step_queries.append([layer["q"].double().numpy() for layer in rec.layers])
    for p in ft.parameters():
        p.requires_grad_(False)
    return ft.eval(), step_queries


# --------------------------------------------------------------------------- metrics
def cosine(a, b) -> float:
    """Cosine similarity in float64; 0 when either vector is zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0.0 or nb == 0.0 else float(a @ b / (na * nb))


def relative_shift(x, base) -> float:
    """||x - base|| / ||base||: how far above float32 rounding an update vector x - base stands."""
    scale = np.linalg.norm(base)
    return float("inf") if scale == 0.0 else float(np.linalg.norm(np.asarray(x) - base) / scale)


def tau(a, b) -> float:
    """Kendall tau-b (scipy); 0 for fewer than two items or a NaN result."""
    if len(a) < 2:
        return 0.0
    value = kendalltau(a, b).statistic
    return 0.0 if np.isnan(value) else float(value)


def simaou(h_icl, h_zsl, h_ft, normalize: bool = True) -> float:
    """cos(h_ICL - h_ZSL, h_FT - h_ZSL) of attention outputs, each L2-normalised first when ``normalize``."""
    if normalize:
        h_icl, h_zsl, h_ft = (h / np.linalg.norm(h) for h in (h_icl, h_zsl, h_ft))
    return cosine(h_icl - h_zsl, h_ft - h_zsl)


def simam(m_icl, m_zsl, m_ft) -> tuple[float, float, float]:
    """(before, after, delta) for score maps (heads, tokens): per head cos(icl, zsl),
    cos(icl, ft), cos(icl - zsl, ft - zsl), each averaged over heads."""
    heads = range(m_icl.shape[0])
    before = np.mean([cosine(m_icl[h], m_zsl[h]) for h in heads])
    after = np.mean([cosine(m_icl[h], m_ft[h]) for h in heads])
    delta = np.mean([cosine(m_icl[h] - m_zsl[h], m_ft[h] - m_zsl[h]) for h in heads])
    return float(before), float(after), float(delta)


def rec2ftp(zsl, icl, ft, labels) -> float | None:
    """#(FT right & ZSL wrong & ICL right) / #(FT right & ZSL wrong); None when nothing is fixed by FT."""
    fixed = [i for i, y in enumerate(labels) if ft[i] == y and zsl[i] != y]
    if not fixed:
        return None
    return sum(icl[i] == labels[i] for i in fixed) / len(fixed)


def rec2ftp_counts(zsl, icl, ft, labels) -> dict:
    """{"ft_fixed": #(FT right & ZSL wrong), "both_fixed": of those, #(ICL right)}."""
    fixed = [i for i, y in enumerate(labels) if ft[i] == y and zsl[i] != y]
    return {"ft_fixed": len(fixed), "both_fixed": sum(icl[i] == labels[i] for i in fixed)}


def change_recall(zsl, icl, ft) -> tuple[float | None, dict]:
    """Deutch et al.'s ChangeRecall and its counts: of the queries whose prediction ICL or FT changes
    from ZSL, the share both change, to the same label; None when none changed."""
    changed = [i for i in range(len(zsl)) if icl[i] != zsl[i] or ft[i] != zsl[i]]
    same = [i for i in changed if icl[i] != zsl[i] and ft[i] != zsl[i] and icl[i] == ft[i]]
    counts = {"changed": len(changed), "same_change": len(same),
              "icl_changed": sum(i != z for i, z in zip(icl, zsl)), "ft_changed": sum(f != z for f, z in zip(ft, zsl))}
    return (len(same) / len(changed) if changed else None), counts


def label_distribution(scores) -> list[float]:
    """Softmax over the label words of their scores (the mean log-probabilities), in float64."""
    return softmax(scores)


def kl(p, q) -> float:
    """KL(p || q) = sum_j p_j log(p_j / q_j) of two distributions (terms with p_j = 0 are 0)."""
    return float(sum(a * np.log(a / b) for a, b in zip(p, q) if a > 0))


def tv(p, q) -> float:
    """Total variation 1/2 sum_j |p_j - q_j|."""
    return float(sum(abs(a - b) for a, b in zip(p, q)) / 2)


def label_shift(scores: dict) -> dict:
    """Per query, from each route's label-word scores: KL and TV between ICL and FT and of each from ZSL,
    ``kl_a_b = KL(p_a || p_b)``, ``tv_a_b = TV(p_a, p_b)``."""
    p = {route: label_distribution(s) for route, s in scores.items()}
    out = {}
    for a, b in (("icl", "ft"), ("icl", "zsl"), ("ft", "zsl")):
        out[f"kl_{a}_{b}"], out[f"tv_{a}_{b}"] = kl(p[a], p[b]), tv(p[a], p[b])
    return out


def kendall_pairs(r_icl: dict, r_ft: dict, demo_positions, n_start: int, step_queries_layer) -> tuple:
    """Token scores for Kendall at one layer, over the demonstration tokens visible at the position.

    m_ICL = the ICL scores of the position over the token, summed over heads; m_FT = the
    FT model's query vector at the position dotted with the query vector the token had in
    its finetuning step (per head), summed over heads, times ``scaling**2`` (the reference
    code dots queries recorded after ``q *= scaling``). Returns ``(m_icl, m_ft, demo)``
    lists with the demonstration index of each token.
    """
    m_icl, m_ft, demo_of = [], [], []
    for d, positions in enumerate(demo_positions):
        for t, p in enumerate(positions):
            if r_icl["visible"][p]:
                q_train = step_queries_layer[d][:, n_start + t]  # (heads, head_dim)
                m_icl.append(float(r_icl["scores"][:, p].sum()))
                m_ft.append(float(np.sum(r_ft["q"] * q_train)) * r_ft["scaling"] ** 2)
                demo_of.append(d)
    return m_icl, m_ft, demo_of


def softmax(values) -> list[float]:
    """exp(v - max) / sum, in float64."""
    v = np.asarray(values, dtype=np.float64)
    e = np.exp(v - v.max())
    return list(e / e.sum())


def example_level(m_icl, m_ft, demo_of) -> tuple[list[float], list[float]]:
    """Each visible demonstration's attention mass: a softmax of each side's token scores over
    the visible demonstration tokens, summed within each demonstration (the reference code's
    example level); for the demonstrations with a visible token, in order."""
    if not demo_of:
        return [], []
    seen = sorted(set(demo_of))
    per_demo = [[sum(p for p, d in zip(softmax(m), demo_of) if d == e) for e in seen] for m in (m_icl, m_ft)]
    return per_demo[0], per_demo[1]


def top(values, k: int) -> set[int]:
    """Indices of the k largest values (the earlier index first among equal values)."""
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return set(order[:k])


def topk_recall(a, b, k: int) -> float:
    """|top_k(a) & top_k(b)| / k with k capped at the number of items; 0 for no item."""
    if not a:
        return 0.0
    k = min(k, len(a))
    return len(top(a, k) & top(b, k)) / k


def fragile_pairs(a, b, rel: float) -> int:
    """Pairs whose order float noise of relative size ``rel`` could flip in ``a`` or in ``b``
    (a gap at most ``rel`` times the largest magnitude)."""
    ea, eb = rel * max(map(abs, a), default=0.0), rel * max(map(abs, b), default=0.0)
    return sum(
        abs(a[i] - a[j]) <= ea or abs(b[i] - b[j]) <= eb for i in range(len(a)) for j in range(i + 1, len(a))
    )


def fragile_tops(a, b, k: int, rel: float) -> int:
    """Top-k memberships that noise of relative size ``rel`` could change, on both sides: where
    the k-th and (k+1)-th largest values are within ``rel`` x the largest magnitude, the items
    near them could trade places (all but one of them)."""
    count = 0
    for values in (a, b):
        if not 0 < k < len(values):
            continue  # no item, or every item in the top k whatever the noise
        ranked, eps = sorted(values, reverse=True), rel * max(map(abs, values))
        kth, next_ = ranked[k - 1], ranked[k]
        if kth - next_ <= eps:
            count += sum(abs(v - kth) <= eps or abs(v - next_) <= eps for v in values) - 1
    return count


def rank_tolerances(a, b, k: int, rel: float) -> tuple[float, float]:
    """How far float noise of relative size ``rel`` could move tau and top-k recall of (a, b).

    Each fragile pair flipped moves tau-b's numerator by 2 over about n(n-1)/2 pairs; each
    item crossing the k-th value moves the overlap by at most 1 of k. With no near tie both
    are 0: any disagreement is then a real one.
    """
    n = len(a)
    tau_tol = 4.0 * fragile_pairs(a, b, rel) / (n * (n - 1)) if n >= 2 else 0.0
    recall_tol = fragile_tops(a, b, k, rel) / min(k, n) if n else 0.0
    return tau_tol, recall_tol


def query_metrics(icl: list[dict], zsl: list[dict], ft: list[dict], spans: dict, step_queries,
                  top_k=(100, 5), noise: float = 0.0) -> list[dict]:
    """The metrics of one query, per layer, from the three captures.

    ``spans``: ``icl_query``/``zsl_query`` the indices of the query's own tokens up to and
    including the position in each prompt (ZSL and FT share the prompt), ``demos`` the
    demonstrations' indices in the ICL prompt, ``n_start`` the start tokens before each
    training example's d_i. Besides the metrics, each layer's row holds the counts of
    visible demonstration tokens, demonstrations and own query tokens, ``simaou_shift`` /
    ``simam_shift``: the smallest relative size of the update vectors the SimAOU /
    SimAM_delta cosines rest on (see :func:`relative_shift`), and ``*_tol``: how far float noise
    of relative size ``noise`` could move each ranking metric (:func:`rank_tolerances`).
    ``top_k``: k of the token- and example-level top-k recall.
    """
    rows = []
    for layer, (r_icl, r_zsl, r_ft) in enumerate(zip(icl, zsl, ft)):
        seen_icl = [bool(r_icl["visible"][i]) for i in spans["icl_query"]]
        assert seen_icl == [bool(r_zsl["visible"][z]) for z in spans["zsl_query"]]
        assert seen_icl == [bool(r_ft["visible"][z]) for z in spans["zsl_query"]]
        i_idx = [i for i, seen in zip(spans["icl_query"], seen_icl) if seen]
        z_idx = [z for z, seen in zip(spans["zsl_query"], seen_icl) if seen]
        maps = [r_icl["scores"][:, i_idx], r_zsl["scores"][:, z_idx], r_ft["scores"][:, z_idx]]
        before, after, delta = simam(*maps)
        tokens = kendall_pairs(r_icl, r_ft, spans["demos"], spans["n_start"], [s[layer] for s in step_queries])
        examples = example_level(*tokens)
        tau_tol, recall_tol = rank_tolerances(tokens[0], tokens[1], top_k[0], noise)
        tau_ex_tol, recall_ex_tol = rank_tolerances(examples[0], examples[1], top_k[1], noise)
        h = [r_icl["output"], r_zsl["output"], r_ft["output"]]
        rows.append({
            "simaou": simaou(*h), "simaou_unnormalized": simaou(*h, normalize=False),
            "simam_before": before, "simam_after": after, "simam_delta": delta,
            "kendall": tau(tokens[0], tokens[1]), "kendall_example": tau(*examples),
            "recall": topk_recall(tokens[0], tokens[1], top_k[0]), "recall_example": topk_recall(*examples, top_k[1]),
            "kendall_tol": tau_tol, "kendall_example_tol": tau_ex_tol,
            "recall_tol": recall_tol, "recall_example_tol": recall_ex_tol,
            "n_visible_demo_tokens": len(tokens[2]), "n_visible_demos": len(set(tokens[2])),
            "n_visible_query_tokens": len(i_idx),
            "simaou_shift": min(relative_shift(h[0], h[1]), relative_shift(h[2], h[1])),
            "simam_shift": min(min(relative_shift(maps[0][k], maps[1][k]), relative_shift(maps[2][k], maps[1][k]))
                               for k in range(maps[0].shape[0])),
        })
    return rows


def reference_analysis(model, tokenizer, demonstrations, queries, *, template, label_words, learning_rate,
                       position="prediction", start_token_id=None, separator="\n", top_k=(100, 5),
                       noise: float = 0.0, shift_demonstrations: int = 0) -> dict:
    """The whole analysis, one query at a time; a dict shaped like the engine's report.

    Per (query, layer) metrics come from :func:`query_metrics`; ``per_layer`` lists are
    means over queries, ``mean`` values means over layers. Also returns the prompts and
    the per-query, per-layer rows of :func:`query_metrics`, each query's label-word scores per route
    (``label_scores``) and label shifts (``label_shift_rows``) for inspection. ``noise``: the
    relative float noise the ranking tolerances allow for. ``shift_demonstrations`` moves the
    demonstration positions the metrics read by that many tokens: a deliberately wrong
    reference, for checking that a comparison catches a misaligned token.
    """
    prompts = build_prompts(tokenizer, template, label_words, separator, demonstrations, queries, start_token_id)
    check_alignment(prompts)
    base = reference_copy(model)
    ft, step_queries = finetune_kv(model, prompts.train, learning_rate)
    first_label = prompts.label_words[0][0]
    preds = {"zsl": [], "icl": [], "ft": []}
    rows, shifts, route_scores = [], [], []
    for j in range(len(queries)):
        icl_prompt, zsl_prompt = prompts.icl(j), prompts.zsl(j)
        scores = {"zsl": label_scores(base, zsl_prompt, prompts.label_words),
                  "icl": label_scores(base, icl_prompt, prompts.label_words),
                  "ft": label_scores(ft, zsl_prompt, prompts.label_words)}
        for route, values in scores.items():
            preds[route].append(int(np.argmax(values)))
        shifts.append(label_shift(scores))
        route_scores.append(scores)
        r_icl, p_icl = capture(base, icl_prompt, first_label, position)
        r_zsl, p_zsl = capture(base, zsl_prompt, first_label, position)
        r_ft, _ = capture(ft, zsl_prompt, first_label, position)
        n_own = p_zsl - len(prompts.start) + 1  # query tokens (and the appended label token) up to the position
        spans = {
            "icl_query": list(range(p_icl - n_own + 1, p_icl + 1)),
            "zsl_query": list(range(p_zsl - n_own + 1, p_zsl + 1)),
            "demos": [[p + shift_demonstrations for p in positions] for positions in prompts.demo_positions],
            "n_start": len(prompts.start),
        }
        rows.append(query_metrics(r_icl, r_zsl, r_ft, spans, step_queries, top_k, noise))
    summary = summarize(rows, preds, [q["label"] for q in queries])
    summary["label_shift"] = {key: {"mean": float(np.mean([s[key] for s in shifts]))} for key in shifts[0]}
    return summary | {"prompts": prompts, "rows": rows, "label_scores": route_scores, "label_shift_rows": shifts}


def summarize(rows: list[list[dict]], preds: dict, labels: list[int]) -> dict:
    """Means over queries per layer (``per_layer``) and over layers (``mean``), predictions, accuracy,
    Rec2FTP and ChangeRecall with their counts."""

    def per_layer(key):
        return [float(np.mean([row[layer][key] for row in rows])) for layer in range(len(rows[0]))]

    def block(key):
        values = per_layer(key)
        return {"per_layer": values, "mean": float(np.mean(values))}

    simaou, simam = block("simaou"), {k: block(f"simam_{k}") for k in ("before", "after", "delta")}
    return {
        "predictions": preds,
        "labels": labels,
        "accuracy": {k: float(np.mean([p == y for p, y in zip(v, labels)])) for k, v in preds.items()},
        "rec2ftp": rec2ftp(preds["zsl"], preds["icl"], preds["ft"], labels),
        "rec2ftp_counts": rec2ftp_counts(preds["zsl"], preds["icl"], preds["ft"], labels),
        "change_recall": change_recall(preds["zsl"], preds["icl"], preds["ft"])[0],
        "change_recall_counts": change_recall(preds["zsl"], preds["icl"], preds["ft"])[1],
        "simaou": {**simaou, "unnormalized_per_layer": per_layer("simaou_unnormalized")},
        "simam": {**{f"per_layer_{k}": v["per_layer"] for k, v in simam.items()},
                  **{k: v["mean"] for k, v in simam.items()}},
        "kendall": {**block("kendall"), "example_level": block("kendall_example")},
        "topk_recall": {"token_level": block("recall"), "example_level": block("recall_example")},
        "tolerance": {key: per_layer(f"{key}_tol") for key in ("kendall", "kendall_example", "recall", "recall_example")},
    }
