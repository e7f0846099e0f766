"""The prompt protocol: template, label words, separator and start token -> token ids.

Strings (``docs/analysis.md``, "Prompts"): ``d_i = template.format(**ex) + label_words[ex["label"]]``,
the ICL prompt is ``separator.join([d_1, ..., d_k, template.format(**query)])`` and the ZSL
prompt is ``template.format(**query)``. Every sequence (ZSL prompt, ICL prompt, each FT
training example) starts with the same start token (``start_token="auto"``: the
tokenizer's BOS, else its EOS; a token string; or ``None`` for none), which is never
scored and never counted as a demonstration or query token.

Each segment (a demonstration, the separator, a query, a label word) is tokenized on its
own without special tokens and the ids are concatenated, as the reference fairseq code
does. This makes the demonstration tokens identical in the ICL prompt and in the
finetuning examples (Kendall compares them token by token) and makes the ICL prefix one
fixed token sequence whose cache every query can reuse.
"""

from __future__ import annotations

import math

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..tasks.spec import template_fields

__all__ = [
    "IclPrefix", "PromptEncoder", "PromptFormat", "demonstration_text", "resolve_start_token", "spaced_label_words",
    "validate_examples",
]


@dataclass(frozen=True)
class PromptFormat:
    """How examples become prompt strings: ``template``, one label word per label, ``separator``."""

    template: str
    label_words: tuple[str, ...]
    separator: str = "\n"

    def __post_init__(self):
        if not isinstance(self.template, str):
            raise TypeError(f"`template` must be a str such as 'Review: {{text}} Sentiment:'; got {self.template!r}.")
        template_fields(self.template)
        words = self.label_words
        if not isinstance(words, Sequence) or isinstance(words, str):
            raise TypeError(f"`label_words` must be a list of str such as [' Negative', ' Positive']; got {words!r}.")
        if any(not isinstance(w, str) or not w for w in words):
            raise TypeError(f"`label_words` must be non-empty strings; got {list(words)!r}.")
        if len(words) < 2:
            raise ValueError(f"`label_words` needs at least two words to choose between; got {list(words)!r}.")
        dupes = sorted({w for w in words if list(words).count(w) > 1})
        if dupes:
            raise ValueError(f"`label_words` holds duplicates {dupes}; each label needs its own word.")
        if not isinstance(self.separator, str):
            raise TypeError(f"`separator` must be a str (e.g. '\\n'); got {type(self.separator).__name__}.")
        object.__setattr__(self, "label_words", tuple(words))

    @property
    def fields(self) -> list[str]:
        """The template's field names."""
        return template_fields(self.template)


def validate_examples(examples: Any, argument: str, prompt: PromptFormat) -> list[dict]:
    """Check ``examples`` (mappings or a ``datasets.Dataset``) and return them as plain dicts.

    Every example must hold the template's fields and an integer ``label`` indexing the label words;
    a field that is ``None`` or NaN (a missing value, which ``str.format`` would print as "None" or
    "nan") is refused.
    """
    if isinstance(examples, (str, bytes, Mapping)) or not isinstance(examples, Iterable):
        raise TypeError(
            f"`{argument}` must be a list of mappings (or a datasets.Dataset) with the template's fields and "
            f"an integer 'label'; got {type(examples).__name__}."
        )
    rows = [dict(ex) if isinstance(ex, Mapping) else ex for ex in examples]
    if not rows:
        raise ValueError(f"`{argument}` is empty; pass at least one example.")
    for i, ex in enumerate(rows):
        if not isinstance(ex, dict):
            raise TypeError(f"`{argument}[{i}]` must be a mapping of fields; got {type(ex).__name__}.")
        missing = [f for f in prompt.fields if f not in ex]
        if missing:
            raise ValueError(
                f"`{argument}[{i}]` lacks the template field(s) {missing} (template {prompt.template!r}); "
                f"its keys are {sorted(ex)}. Rename the column or change the template."
            )
        for name in prompt.fields:
            value = ex[name]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise ValueError(
                    f"`{argument}[{i}]['{name}']` is {value!r}, a missing value the template would print as the word "
                    f"{str(value)!r}; give that example a text or leave it out."
                )
        ex["label"] = _label_index(ex.get("label"), f"`{argument}[{i}]['label']`", prompt.label_words)
    return rows


def _label_index(label: Any, where: str, label_words: Sequence[str]) -> int:
    if hasattr(label, "item") and not isinstance(label, bool):  # numpy / torch integer scalars
        label = label.item()
    if isinstance(label, bool) or not isinstance(label, int):
        raise ValueError(f"{where} must be an int index into label_words; got {label!r}.")
    if not 0 <= label < len(label_words):
        raise ValueError(
            f"{where} is {label}, outside label_words (indices 0..{len(label_words) - 1}: {list(label_words)}). "
            "Fix the label or add the missing label word."
        )
    return label


def spaced_label_words(prompt: PromptFormat) -> tuple[PromptFormat, list[str]]:
    """The label-word rule (``docs/analysis.md``, "Prompts"): ``(prompt, notes)``.

    After a template that ends in a visible character (``"... Sentiment:"``), a label word without
    leading whitespace would be glued to it (``"Sentiment:Negative"``), a string the model never
    reads in text; such a word gets a leading space, as ``--label-words`` gives every word, and a
    note says so. A template that ends in whitespace keeps its words as given.
    """
    if not prompt.template or prompt.template[-1].isspace():
        return prompt, []
    bare = [w for w in prompt.label_words if not w[:1].isspace()]
    if not bare:
        return prompt, []
    words = tuple(w if w[:1].isspace() else " " + w for w in prompt.label_words)
    note = (f"label words {bare} have no leading space after the template's last character {prompt.template[-1]!r}: "
            f"used {list(words)}, as --label-words does (end the template with a space to keep the words as given).")
    return PromptFormat(prompt.template, words, prompt.separator), [note]


def demonstration_text(example: Mapping, prompt: PromptFormat) -> str:
    """``template.format(**example) + label_words[example["label"]]``."""
    return prompt.template.format(**example) + prompt.label_words[example["label"]]


def resolve_start_token(tokenizer: Any, start_token: str | None) -> tuple[list[int], str | None, list[str]]:
    """``(ids, token, notes)`` of the start token: ``"auto"`` (BOS, else EOS), a token string, or ``None``."""
    if start_token is None:
        return [], None, []
    if start_token == "auto":
        for kind in ("bos", "eos"):
            token, token_id = getattr(tokenizer, f"{kind}_token", None), getattr(tokenizer, f"{kind}_token_id", None)
            if token is not None and token_id is not None:
                return [int(token_id)], str(token), []
        return [], None, ["start_token='auto': the tokenizer has neither a BOS nor an EOS token, so sequences start "
                          "without a start token; pass start_token='<token>' to choose one."]
    token_id = tokenizer.convert_tokens_to_ids(start_token)
    unk = getattr(tokenizer, "unk_token_id", None)
    if token_id is None or (token_id == unk and start_token != getattr(tokenizer, "unk_token", None)):
        raise ValueError(
            f"start_token {start_token!r} is not a token of this tokenizer; pass one of its tokens "
            f"(e.g. {getattr(tokenizer, 'bos_token', None) or getattr(tokenizer, 'eos_token', None)!r}), 'auto' or None."
        )
    return [int(token_id)], start_token, []


@dataclass
class IclPrefix:
    """The demonstration prefix of every ICL prompt, as token ids.

    ``ids`` = start token + ``d_1`` + separator + ... + ``d_k`` + separator.
    ``demo_positions`` indexes the tokens of the ``d_i`` in ``ids`` (start and separators
    excluded), in the order the finetuning pass sees them; ``demo_owner[j]`` is the
    demonstration (0-based) that ``demo_positions[j]`` belongs to.
    """

    ids: list[int]
    demo_positions: list[int]
    n_demonstrations: int
    demo_ids: list[list[int]] = field(default_factory=list)
    demo_owner: list[int] = field(default_factory=list)


class PromptEncoder:
    """Token ids for one :class:`PromptFormat` and start token under one tokenizer."""

    def __init__(self, tokenizer: Any, prompt: PromptFormat, start_token: str | None = "auto"):
        self.tokenizer = tokenizer
        self.prompt, spacing_notes = spaced_label_words(prompt)
        self.start_ids, self.start_token, self.notes = resolve_start_token(tokenizer, start_token)
        self.notes = spacing_notes + self.notes
        self.separator_ids = self._encode(prompt.separator) if prompt.separator else []
        self.label_ids = [self._encode(w) for w in self.prompt.label_words]
        self._check_label_tokens()

    @property
    def label_words(self) -> tuple[str, ...]:
        return self.prompt.label_words

    def _check_label_tokens(self) -> None:
        firsts: dict[int, str] = {}
        for word, ids in zip(self.prompt.label_words, self.label_ids):
            if not ids:
                raise ValueError(f"label word {word!r} tokenizes to nothing; choose a visible word.")
            if ids[0] in firsts:
                raise ValueError(
                    f"`label_words` {firsts[ids[0]]!r} and {word!r} start with the same token "
                    f"({self.tokenizer.convert_ids_to_tokens(ids[0])!r}), so the prediction and the label position "
                    "cannot tell them apart. Choose words whose first tokens differ (e.g. add a leading space to both)."
                )
            firsts[ids[0]] = word

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # --------------------------------------------------------------- segments
    def demonstration_ids(self, example: Mapping) -> list[int]:
        """Token ids of ``d_i`` (no start token)."""
        return self._encode(demonstration_text(example, self.prompt))

    def query_ids(self, example: Mapping) -> list[int]:
        """Token ids of ``template.format(**query)`` (no start token)."""
        return self._encode(self.prompt.template.format(**example))

    def training_ids(self, example: Mapping) -> list[int]:
        """One finetuning example: start token + ``d_i``."""
        return self.start_ids + self.demonstration_ids(example)

    def prefix(self, demonstrations: Sequence[Mapping]) -> IclPrefix:
        """The ICL demonstration prefix for ``demonstrations`` in order."""
        return self._assembled([self.demonstration_ids(ex) for ex in demonstrations])

    def reordered(self, prefix: IclPrefix, order: Sequence[int]) -> IclPrefix:
        """The prefix of ``prefix``'s demonstrations in ``order`` (indices into them), from their token ids.

        The segments are re-concatenated, not re-tokenized: the result equals :meth:`prefix` of the
        demonstrations in that order (``docs/analysis.md``, "Demonstration orders").
        """
        if sorted(order) != list(range(prefix.n_demonstrations)):
            raise ValueError(f"`order` must be a permutation of 0..{prefix.n_demonstrations - 1}; got {list(order)}.")
        return self._assembled([prefix.demo_ids[i] for i in order])

    def _assembled(self, demo_ids: Sequence[Sequence[int]]) -> IclPrefix:
        """Start token + ``d_1`` + separator + ... + ``d_k`` + separator, from each demonstration's token ids."""
        ids = list(self.start_ids)
        positions: list[int] = []
        owner: list[int] = []
        for i, d in enumerate(demo_ids):
            positions.extend(range(len(ids), len(ids) + len(d)))
            owner.extend([i] * len(d))
            ids.extend(d)
            ids.extend(self.separator_ids)
        return IclPrefix(ids, positions, len(demo_ids), [list(d) for d in demo_ids], owner)

    def fit_prefix(
        self, demonstrations: Sequence[Mapping], queries: Sequence[Mapping], max_length: int | None
    ) -> tuple[IclPrefix, list[str]]:
        """The longest prefix of ``demonstrations`` whose ICL prompt fits ``max_length`` for every query.

        Demonstrations are dropped from the end, as the reference code packs the context.
        Returns the prefix and notes saying how many were kept; raises ``ValueError`` when
        not even one demonstration fits.
        """
        longest_query = max(len(self.query_ids(q)) for q in queries) + max(len(ids) for ids in self.label_ids)
        prefix = self.prefix(demonstrations)
        if max_length is None or len(prefix.ids) + longest_query <= max_length:
            return prefix, []
        lengths = [len(self.demonstration_ids(d)) + len(self.separator_ids) for d in demonstrations]
        total, keep = len(self.start_ids), 0
        for n in lengths:
            if total + n + longest_query > max_length:
                break
            total, keep = total + n, keep + 1
        if keep == 0:
            raise ValueError(
                f"not even one demonstration fits the model's context of {max_length} tokens "
                f"(the first demonstration plus the longest query need {total + lengths[0] + longest_query}). "
                "Shorten the examples or use a model with a longer context."
            )
        note = (
            f"the ICL prompt exceeded the model's context of {max_length} tokens: kept the first {keep} of "
            f"{len(demonstrations)} demonstrations (dropped from the end)."
        )
        return self.prefix(demonstrations[:keep]), [note]
