"""The layer-causal loss (Deutch et al., NAACL 2024): every layer's input detached, a causal-LM loss at every layer.

In-context learning's update of layer ``l`` cannot depend on the layers above ``l``; plain
finetuning's can, since the loss is read after the last layer. Deutch et al.'s layer-causal
gradient descent removes that dependence: each decoder layer's hidden-states input is
detached, each layer's output goes through the model's final stage (the final norm, the
output embeddings, final-logit soft-capping) to logits, and the loss is the sum over layers
of each layer's causal-LM loss. The last layer's loss is the model's own loss. With every
input detached, layer ``l``'s parameters get the gradient of layer ``l``'s loss only
(``docs/analysis.md``, "Layer-causal finetuning").

:func:`layer_causal_layout` finds the parts by module structure, through public API and
hooks, and checks them before any training: the decoder layers are the elements of the
``nn.ModuleList`` holding the attention layers (:func:`~.layout.attention_layers`), the final
stage is what the model runs between its last layer and ``get_output_embeddings()`` (seen in
one small probe forward), and applying that stage to the last layer's output must reproduce
the model's logits. Training uses forward pre-hooks (with kwargs) to detach each layer's
input and forward hooks to read each layer's output.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..torch_utils import eval_mode, input_device
from .layout import UnsupportedArchitectureError, attention_layers

__all__ = ["LayerCausalLayout", "layer_causal_layout"]

# At most this many tokens of the first training example make the probe forward.
PROBE_TOKENS = 8


def _refusal(model: nn.Module, why: str) -> UnsupportedArchitectureError:
    return UnsupportedArchitectureError(
        f"{type(model).__name__}: the layer-causal loss needs {why}. Use method='kv' (or 'lora'), which trains the same "
        "parameters with the model's own loss."
    )


def transformers_model(module: nn.Module) -> nn.Module:
    """The transformers model inside ``module`` (a distributed wrapper's module, a PEFT wrapper's base model), or ``module``."""
    from accelerate.utils import extract_model_from_parallel
    from transformers import PreTrainedModel

    module = extract_model_from_parallel(module)
    if not isinstance(module, PreTrainedModel) and callable(getattr(module, "get_base_model", None)):
        return module.get_base_model()
    return module


def _layer_output(output: Any) -> torch.Tensor:
    hidden = output[0] if isinstance(output, (tuple, list)) else output
    if not torch.is_tensor(hidden):
        raise TypeError(f"a decoder layer returned {type(output).__name__}, not its hidden states (a tensor, or a tuple starting with one).")
    return hidden


def _detach_input(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook: the layer's hidden-states input (first positional, else ``hidden_states=``) detached."""
    if args and torch.is_tensor(args[0]):
        return (args[0].detach(), *args[1:]), kwargs
    if torch.is_tensor(kwargs.get("hidden_states")):
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"].detach()}
    raise TypeError(f"{type(module).__name__} got no hidden-states tensor (first positional argument or `hidden_states=`).")


@contextmanager
def _layers_hooked(layers: Sequence[nn.Module], read: Sequence[nn.Module], outputs: list[torch.Tensor]) -> Iterator[None]:
    """Within: every layer of ``layers`` gets its input detached; the output of each of ``read`` is appended to ``outputs``."""
    handles = []
    try:
        for layer in layers:
            handles.append(layer.register_forward_pre_hook(_detach_input, with_kwargs=True))
        for layer in read:
            handles.append(layer.register_forward_hook(lambda module, args, output: outputs.append(_layer_output(output))))
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class LayerCausalLayout:
    """Where a causal LM keeps what the layer-causal loss reads, by qualified module name.

    ``layers``: the decoder layers in order; ``final``: the modules the model applies between
    its last layer and its output embeddings (the final norm), in order; ``head``: the output
    embeddings; ``softcap``: the config's ``final_logit_softcapping`` (``None``: none). Names are
    those of the transformers model, so the layout also holds for a copy of it, or for a PEFT
    wrapping of it or of a copy.
    """

    layers: tuple[str, ...]
    final: tuple[str, ...]
    head: str
    softcap: float | None

    def logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """The logits ``model`` would give if ``hidden`` were its last layer's output: final stage, head, soft-capping."""
        base = transformers_model(model)
        for name in self.final:
            hidden = base.get_submodule(name)(hidden)
        logits = base.get_submodule(self.head)(hidden)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def layer_loss(self, model: nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The model's own causal-LM loss (mean over the shifted labels) of the logits :meth:`logits` gives ``hidden``."""
        logits = self.logits(model, hidden)
        return transformers_model(model).loss_function(logits, labels, vocab_size=logits.shape[-1])

    def loss(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        """``(layer-causal loss, the model's outputs)`` of ``model(**inputs)`` (``inputs`` hold ``labels``).

        The sum over layers ``l < L-1`` of :meth:`layer_loss` of layer ``l``'s output, plus the
        model's own loss (layer ``L-1``'s), each layer's input detached. With gradients on, each
        layer's logits are recomputed in the backward pass (``torch.utils.checkpoint``) rather
        than held: one layer's logits at a time, whatever the number of layers.
        """
        base = transformers_model(model)
        layers = [base.get_submodule(name) for name in self.layers]
        hidden: list[torch.Tensor] = []
        with _layers_hooked(layers, layers[:-1], hidden):
            outputs = model(**inputs)
        labels, loss = inputs["labels"], outputs.loss
        for h in hidden:
            if torch.is_grad_enabled():
                loss = loss + checkpoint(self.layer_loss, model, h, labels, use_reentrant=False)
            else:
                loss = loss + self.layer_loss(model, h, labels)
        return loss, outputs

    @torch.no_grad()
    def example_loss(self, model: nn.Module, ids: Sequence[int]) -> float:
        """The layer-causal loss of one example (token ids; labels = the ids), without gradients."""
        tensor = torch.tensor([list(ids)], device=input_device(transformers_model(model)))
        return float(self.loss(model, {"input_ids": tensor, "labels": tensor})[0])


def _decoder_layers(model: nn.Module) -> list[str]:
    """The name of each attention layer's decoder layer: its ancestor that is an element of an ``nn.ModuleList``."""
    names = []
    for attention in attention_layers(model):
        parts = attention.name.split(".")
        found = next((".".join(parts[: i + 1]) for i in range(1, len(parts) - 1)
                      if isinstance(model.get_submodule(".".join(parts[:i])), nn.ModuleList)), None)
        if found is None:
            raise _refusal(model, f"its decoder layers, and the attention module {attention.name!r} lies in no nn.ModuleList of layers")
        names.append(found)
    if len(set(names)) != len(names):
        raise _refusal(model, "one attention module per decoder layer, and some layer holds several")
    return names


def _probe(model: nn.Module, layers: list[str], head: str, ids: Sequence[int]) -> tuple[list[str], list[torch.Tensor], torch.Tensor]:
    """One forward of ``ids`` that records which modules start after the last layer and before the head.

    Returns ``(those modules' names in call order, every layer's output, the model's logits)``.
    """
    events: list[tuple[str, str]] = []
    handles = [module.register_forward_pre_hook(lambda m, a, name=name: events.append(("start", name)))
               for name, module in model.named_modules() if name]
    handles.append(model.get_submodule(layers[-1]).register_forward_hook(lambda m, a, o: events.append(("end", layers[-1]))))
    modules = [model.get_submodule(name) for name in layers]
    outputs: list[torch.Tensor] = []
    try:
        with torch.no_grad(), eval_mode(model), _layers_hooked(modules, modules, outputs):
            logits = model(input_ids=torch.tensor([list(ids)], device=input_device(model))).logits
    finally:
        for handle in handles:
            handle.remove()
    calls = [name for kind, name in events if kind == "start" and name in set(layers)]
    if calls != layers:
        raise _refusal(model, "each decoder layer called once per forward, in order; the probe forward called "
                              f"{len(calls)} of {len(layers)} layers or another order")
    end = events.index(("end", layers[-1]))
    stop = next((i for i in range(end, len(events)) if events[i] == ("start", head)), None)
    if stop is None:
        raise _refusal(model, f"its output embeddings {head!r} called after its last decoder layer")
    after = [name for kind, name in events[end + 1 : stop] if kind == "start"]
    final = [n for n in after if not any(n.startswith(other + ".") for other in after)]  # top-level modules only
    return final, outputs, logits


def layer_causal_layout(model: nn.Module, probe_ids: Sequence[int]) -> LayerCausalLayout:
    """Find and check where ``model`` keeps its decoder layers, final stage and output embeddings.

    One probe forward of the first :data:`PROBE_TOKENS` of ``probe_ids`` (no gradients, in eval
    mode, the model's flags restored; ``model`` is not changed). The final stage is accepted
    only if applying it, the head and the soft-capping to the last layer's output gives the
    model's logits.

    Raises:
        UnsupportedArchitectureError: a part is missing or the reconstruction differs; the
            message names the model class and the methods that work without it.
    """
    base = transformers_model(model)
    layers = _decoder_layers(base)
    head_module = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    head = next((name for name, module in base.named_modules() if module is head_module), None)
    if not head:
        raise _refusal(base, "output embeddings (get_output_embeddings()) among its modules")
    ids = list(probe_ids)[:PROBE_TOKENS]
    if not ids:
        raise ValueError("`probe_ids` is empty; the layer-causal layout needs a training example's tokens to probe the model.")
    final, outputs, logits = _probe(base, layers, head, ids)
    softcap = getattr(base.config, "final_logit_softcapping", None)
    layout = LayerCausalLayout(tuple(layers), tuple(final), head, float(softcap) if softcap else None)
    with torch.no_grad():
        rebuilt = layout.logits(base, outputs[-1]).float()
    wide = logits.dtype in (torch.float32, torch.float64)
    scale = 1.0 + float(logits.float().abs().max())
    if rebuilt.shape != logits.shape or not torch.allclose(rebuilt, logits.float(), rtol=1e-4 if wide else 2e-2,
                                                         atol=(1e-4 if wide else 2e-2) * scale):
        stage = " -> ".join([*final, head]) + (f" -> soft-capping at {softcap:g}" if softcap else "")
        raise _refusal(base, f"each layer's output mapped to logits as the model maps its last layer's; {stage} applied to the "
                             "last layer's output does not reproduce the model's logits")
    return layout
