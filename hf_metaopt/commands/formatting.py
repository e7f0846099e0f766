"""``--help`` text of the commands whose flags are dataclass fields."""

from __future__ import annotations

import argparse
import re

__all__ = ["HelpFormatter"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each flag's default (as a flag or a YAML value writes it), unless its help names the default
    already (``--model``), and with ``--no-x`` switches described as what they do rather than as a copy of ``--x``'s help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.nargs == 0 and action.const is False and action.option_strings[0].startswith("--no"):
            positive = "--" + action.dest.replace("_", "-")
            own = re.search(r"\(--no-[\w-]+: ([^)]*)\)", text)
            if own:
                return f"{own.group(1)} (turns {positive} off)."
            return "do not " + re.sub(r"\s*\([^)]*\)", "", text).rstrip(".") + f" (turns {positive} off)."
        default = action.default
        if re.search(r"\bdefault\b", text) or default in (None, argparse.SUPPRESS) or not action.option_strings:
            return text
        # as a flag or a YAML value would write it: lists space-separated, None as null, enums by value
        shown = " ".join("null" if v is None else str(v) for v in default) if isinstance(default, (list, tuple)) else getattr(default, "value", default)
        return f"{text} (default: {str(shown).replace('%', '%%')})"
