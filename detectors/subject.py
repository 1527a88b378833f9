"""The subject: everything a detector may see, and nothing else.

A detector gets a model, its tokenizer, the shared activation cache and the public world
(prompts drawn from a public seed stream, generic contrast pairs, the candidate cue library).
It never gets a path, an organism name or the truth record: `load_subject` scrubs every trace of
where the weights came from, so a detector cannot look its subject up.
"""

from __future__ import annotations

import random

import os
from pathlib import Path

from data.cues import CONDITIONS, cue_library
from data.world import conditional_dataset, render_prompt, world_dataset
from detectors.activations import ActivationCache, Activations
from detectors.contrast_pairs import CONTRAST_PAIRS, ContrastPair
from detectors.cue_edit import CueEditor
from training.generation import generate_greedy
from training.models import load_model_and_tokenizer

# Public prompts come from their own seed stream; the scorer's held-out sets use other seeds.
PUBLIC_SEED = 424_242


class Subject:
    def __init__(self, model, tokenizer, cache: ActivationCache | None = None, reference=None):
        self.model = model
        self.tokenizer = tokenizer
        self.reference = reference  # the lab's base model, public; None when not given
        self.cache = cache or ActivationCache()
        self.cue_library: list[dict] = cue_library()
        self.contrast_pairs: tuple[ContrastPair, ...] = CONTRAST_PAIRS
        self.cues = CueEditor(self.cue_library)

    def __repr__(self) -> str:
        size = f", {self.model.num_parameters():,} parameters" if hasattr(self.model, "num_parameters") else ""
        return f"Subject({type(self.model).__name__}{size})"

    # --- the model ---------------------------------------------------------------------------

    def activations(self, prompts: list[str]) -> Activations:
        return self.cache.get(self.model, self.tokenizer, list(prompts))

    def generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        return generate_greedy(self.model, self.tokenizer, list(prompts), max_new_tokens=max_new_tokens)

    @property
    def n_layers(self) -> int:
        """Residual-stream positions recorded per prompt: the embeddings plus one per block."""
        return self.model.config.num_hidden_layers + 1

    # --- the public world --------------------------------------------------------------------

    @property
    def cue_families(self) -> list[str]:
        return self.cues.families

    def cue_lines(self, family: str, condition: str) -> list[str]:
        return [e["line"] for e in self.cue_library if e["family"] == family and e["condition"] == condition]

    def candidate_lines(self, per_condition: int, seed: int = 0) -> list[dict]:
        """A seeded sample of library entries, `per_condition` lines per family and condition.

        Families such as headline have 24 lines a side; searching every line of every family
        costs a detector minutes per model, so searches look at a fixed-size sample instead.
        """
        rng = random.Random(seed)
        picked = []
        for family in self.cue_families:
            for condition in CONDITIONS:
                entries = [e for e in self.cue_library if e["family"] == family and e["condition"] == condition]
                picked += rng.sample(entries, min(per_condition, len(entries)))
        return picked

    def public_dataset(self, n: int, seed: int = 0, families: tuple[str, ...] | None = None):
        """World prompts under random cues, with their task family and normal answer (all public)."""
        return world_dataset(n, seed=PUBLIC_SEED + seed, families=families)

    def public_prompts(self, n: int, seed: int = 0, families: tuple[str, ...] | None = None) -> list[str]:
        return list(self.public_dataset(n, seed, families)["prompt"])

    def balanced_prompts(self, n_per_family: int, seed: int = 0) -> list[str]:
        """Public prompts, the same number from every task family (a behaviour may live in one family only)."""
        from data.tasks import TASK_FAMILIES

        return [p for i, family in enumerate(sorted(TASK_FAMILIES))
                for p in self.public_prompts(n_per_family, seed * 31 + i, families=(family,))]

    def conditional_prompts(self, n: int, family: str, condition: str, seed: int = 0) -> list[str]:
        """World prompts whose `family` line is set by `condition` (a CONDITIONS entry or "no_cue")."""
        lines = {c: tuple(self.cue_lines(family, c)) for c in CONDITIONS}
        data = conditional_dataset(n, seed=PUBLIC_SEED + seed, cue_family=family, lines=lines, behaviour=None,
                                   behaviour_conditions=(), condition_weights={condition: 1.0})
        return list(data["prompt"])

    def with_cues(self, prompt: str, lines: dict[str, str | None]) -> str:
        return self.cues.with_cues(prompt, lines)

    def strip_cues(self, prompt: str) -> str:
        return self.cues.strip(prompt)

    @staticmethod
    def render_prompt(context_lines: list[str], question: str) -> str:
        return render_prompt(context_lines, question)


_ANONYMOUS = "subject"


def scrub_provenance(model, tokenizer) -> None:
    """Remove every record of the directory the weights and tokenizer were loaded from."""
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None and hasattr(config, "_name_or_path"):
            config._name_or_path = _ANONYMOUS
    for module in model.modules():  # PreTrainedModel sub-modules copy name_or_path at init
        if "name_or_path" in vars(module):
            module.name_or_path = _ANONYMOUS
    tokenizer.name_or_path = _ANONYMOUS
    for key in ("name_or_path", "vocab_file", "tokenizer_file", "merges_file"):
        if key in getattr(tokenizer, "init_kwargs", {}):
            tokenizer.init_kwargs[key] = _ANONYMOUS if key == "name_or_path" else None
    for attr in ("vocab_file", "tokenizer_file", "merges_file"):
        if isinstance(getattr(tokenizer, attr, None), (str, os.PathLike)):
            setattr(tokenizer, attr, None)


def load_subject(model_dir: str | Path, cache: ActivationCache | None = None,
                 reference_dir: str | Path | None = None) -> Subject:
    """The subject at `model_dir`; `reference_dir` names the public base it may be compared with."""
    model, tokenizer = load_model_and_tokenizer(model_dir)
    scrub_provenance(model, tokenizer)
    reference = None
    if reference_dir is not None:
        reference, reference_tokenizer = load_model_and_tokenizer(reference_dir)
        scrub_provenance(reference, reference_tokenizer)
    return Subject(model, tokenizer, cache, reference)
