"""Prompts of the three routes as token ids: demonstrations, ICL prefix, queries, label words.

Strings follow contract 3: ``d_i = template.format(**ex) + label_words[ex["label"]]``,
the ICL prompt is ``separator.join([d_1, ..., d_k, template.format(**query)])`` and the
ZSL prompt is ``template.format(**query)``.

Each segment (a demonstration, the separator, a query, a label word) is tokenized on
its own and the ids are concatenated, as the reference fairseq code does. This makes
the demonstration tokens identical in the ICL prompt and in the finetuning examples
(Kendall compares them token by token) and makes the ICL prefix one fixed token
sequence whose cache every query can reuse. The tokenizer's leading special tokens
(e.g. a BOS) start every sequence, as its default encoding does; trailing special
tokens (an EOS some tokenizers append) are not used, since they would sit between
the prompt and the label word.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PromptEncoder", "IclPrefix", "template_fields", "validate_examples", "demonstration_text"]


def template_fields(template: str) -> list[str]:
    """Names of the ``{fields}`` a ``str.format`` template uses, in order."""
    if not isinstance(template, str) or not template:
        raise TypeError(f"`template` must be a non-empty str such as 'Review: {{text}} Sentiment:'; got {template!r}.")
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError(f"`template` {template!r} uses a positional field; name every field, e.g. '{{text}}'.")
        root = name.split(".")[0].split("[")[0]
        if root not in names:
            names.append(root)
    return names


def validate_examples(examples: Any, argument: str, template: str, label_words: Sequence[str]) -> list[dict]:
    """Check ``examples`` (mappings or a ``datasets.Dataset``) and return them as plain dicts.

    Every example must hold the template's fields and an integer ``label`` indexing
    ``label_words``.
    """
    if isinstance(examples, (str, bytes, Mapping)) or not isinstance(examples, Iterable):
        raise TypeError(
            f"`{argument}` must be a list of mappings (or a datasets.Dataset) with the template's fields and "
            f"an integer 'label'; got {type(examples).__name__}."
        )
    rows = [dict(ex) if isinstance(ex, Mapping) else ex for ex in examples]
    if not rows:
        raise ValueError(f"`{argument}` is empty; pass at least one example.")
    fields = template_fields(template)
    for i, ex in enumerate(rows):
        if not isinstance(ex, dict):
            raise TypeError(f"`{argument}[{i}]` must be a mapping of fields; got {type(ex).__name__}.")
        missing = [f for f in fields if f not in ex]
        if missing:
            raise ValueError(
                f"`{argument}[{i}]` lacks the template field(s) {missing} (template {template!r}); "
                f"its keys are {sorted(ex)}. Rename the column or change the template."
            )
        label = ex.get("label")
        if isinstance(label, bool) or not isinstance(label, int):
            try:
                import numpy as np

                if isinstance(label, np.integer):
                    ex["label"] = label = int(label)
            except ImportError:  # pragma: no cover
                pass
        if isinstance(label, bool) or not isinstance(label, int):
            raise ValueError(f"`{argument}[{i}]['label']` must be an int index into label_words; got {label!r}.")
        if not 0 <= label < len(label_words):
            raise ValueError(
                f"`{argument}[{i}]['label']` is {label}, outside label_words (indices 0..{len(label_words) - 1}: "
                f"{list(label_words)}). Fix the label or add the missing label word."
            )
    return rows


def demonstration_text(example: Mapping, template: str, label_words: Sequence[str]) -> str:
    """``template.format(**example) + label_words[example["label"]]``."""
    return template.format(**example) + label_words[example["label"]]


@dataclass
class IclPrefix:
    """The demonstration prefix of every ICL prompt, as token ids.

    ``ids`` = leading special tokens + ``d_1`` + separator + ... + ``d_k`` + separator.
    ``demo_positions`` indexes the tokens of the ``d_i`` in ``ids`` (specials and
    separators excluded), in the order the finetuning pass sees them.
    """

    ids: list[int]
    demo_positions: list[int]
    n_demonstrations: int
    demo_ids: list[list[int]] = field(default_factory=list)


class PromptEncoder:
    """Token ids for one template, label-word set and separator under one tokenizer."""

    def __init__(self, tokenizer: Any, template: str, label_words: Sequence[str], separator: str = "\n"):
        if not isinstance(label_words, Sequence) or isinstance(label_words, str):
            raise TypeError(f"`label_words` must be a list of str such as [' Negative', ' Positive']; got {label_words!r}.")
        label_words = list(label_words)
        if len(label_words) < 2:
            raise ValueError(f"`label_words` needs at least two words to choose between; got {label_words!r}.")
        if any(not isinstance(w, str) or not w for w in label_words):
            raise TypeError(f"`label_words` must be non-empty strings; got {label_words!r}.")
        dupes = sorted({w for w in label_words if label_words.count(w) > 1})
        if dupes:
            raise ValueError(f"`label_words` holds duplicates {dupes}; each label needs its own word.")
        if not isinstance(separator, str):
            raise TypeError(f"`separator` must be a str (e.g. '\\n'); got {type(separator).__name__}.")
        template_fields(template)
        self.tokenizer = tokenizer
        self.template = template
        self.label_words = label_words
        self.separator = separator
        self.special_prefix = self._leading_specials()
        self.separator_ids = self._encode(separator) if separator else []
        self.label_ids = [self._encode(w) for w in label_words]
        for word, ids in zip(label_words, self.label_ids):
            if not ids:
                raise ValueError(f"label word {word!r} tokenizes to nothing; choose a visible word.")
        firsts: dict[int, str] = {}
        for word, ids in zip(label_words, self.label_ids):
            if ids[0] in firsts:
                raise ValueError(
                    f"`label_words` {firsts[ids[0]]!r} and {word!r} start with the same token "
                    f"({tokenizer.convert_ids_to_tokens(ids[0])!r}); the label position would be ambiguous. "
                    "Choose words whose first tokens differ (e.g. add a leading space to both)."
                )
            firsts[ids[0]] = word

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _leading_specials(self) -> list[int]:
        probe = "probe text"
        plain = self._encode(probe)
        full = list(self.tokenizer(probe)["input_ids"])
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return full[:start]
        return []

    # --------------------------------------------------------------- segments
    def demonstration_ids(self, example: Mapping) -> list[int]:
        """Token ids of ``d_i`` (no special tokens)."""
        return self._encode(demonstration_text(example, self.template, self.label_words))

    def query_ids(self, example: Mapping) -> list[int]:
        """Token ids of ``template.format(**query)`` (no special tokens)."""
        return self._encode(self.template.format(**example))

    def training_ids(self, example: Mapping) -> list[int]:
        """One finetuning example: leading specials + ``d_i``."""
        return self.special_prefix + self.demonstration_ids(example)

    def prefix(self, demonstrations: Sequence[Mapping]) -> IclPrefix:
        """The ICL demonstration prefix for ``demonstrations`` in order."""
        ids = list(self.special_prefix)
        positions: list[int] = []
        demo_ids = []
        for ex in demonstrations:
            d = self.demonstration_ids(ex)
            demo_ids.append(d)
            positions.extend(range(len(ids), len(ids) + len(d)))
            ids.extend(d)
            ids.extend(self.separator_ids)
        return IclPrefix(ids=ids, demo_positions=positions, n_demonstrations=len(demonstrations), demo_ids=demo_ids)

    def fit_prefix(
        self, demonstrations: Sequence[Mapping], queries: Sequence[Mapping], max_length: int | None
    ) -> tuple[IclPrefix, list[str]]:
        """The longest prefix of ``demonstrations`` whose ICL prompt fits ``max_length`` for every query.

        Demonstrations are dropped from the end, as the reference code packs the
        context. Returns the prefix and notes saying how many were kept; raises
        ``ValueError`` when not even one demonstration fits.
        """
        longest_label = max(len(ids) for ids in self.label_ids)
        longest_query = max(len(self.query_ids(q)) for q in queries) + longest_label
        prefix = self.prefix(demonstrations)
        if max_length is None or len(prefix.ids) + longest_query <= max_length:
            return prefix, []
        lengths = [len(self.demonstration_ids(d)) + len(self.separator_ids) for d in demonstrations]
        total = len(self.special_prefix)
        keep = 0
        for n in lengths:
            if total + n + longest_query > max_length:
                break
            total += n
            keep += 1
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
