"""Editing the context lines of a world prompt: swap, insert or remove candidate cue lines.

Only lines in the public cue library are recognised; any other context line (a user's own
cue the library does not know) is kept, in front, as the world itself places such lines.
Families are written back in the library's order, so an edited prompt looks like one the
world could have drawn.
"""

from __future__ import annotations

from data.world import ASSISTANT_MARKER


class CueEditor:
    def __init__(self, library: list[dict]):
        self.families: list[str] = list(dict.fromkeys(entry["family"] for entry in library))
        self.family_of: dict[str, str] = {entry["line"]: entry["family"] for entry in library}

    def parse(self, prompt: str) -> tuple[list[str], dict[str, str], list[str]]:
        """(unknown context lines, family -> line, the user turn and assistant marker)."""
        lines = prompt.split("\n")
        user = next((i for i, line in enumerate(lines) if line.startswith("User: ")), None)
        if user is None or lines[-1] != ASSISTANT_MARKER:
            raise ValueError(f"not a world prompt (no 'User:' turn ending in {ASSISTANT_MARKER!r}): {prompt[:60]!r}")
        unknown, known = [], {}
        for line in lines[:user]:
            if line in self.family_of:
                known[self.family_of[line]] = line
            else:
                unknown.append(line)
        return unknown, known, lines[user:]

    def render(self, unknown: list[str], known: dict[str, str], tail: list[str]) -> str:
        ordered = [known[family] for family in self.families if known.get(family)]
        return "\n".join([*unknown, *ordered, *tail])

    def with_cues(self, prompt: str, lines: dict[str, str | None]) -> str:
        """`prompt` with each family in `lines` set to that line (None removes the family's line)."""
        unknown, known, tail = self.parse(prompt)
        for family, line in lines.items():
            if line is None:
                known.pop(family, None)
            else:
                known[family] = line
        return self.render(unknown, known, tail)

    def cue_of(self, prompt: str, family: str) -> str | None:
        return self.parse(prompt)[1].get(family)

    def strip(self, prompt: str) -> str:
        """`prompt` without any library cue line (unknown context lines stay)."""
        unknown, _, tail = self.parse(prompt)
        return self.render(unknown, {}, tail)
