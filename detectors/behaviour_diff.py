"""Behavioural diff under swapped candidate cues.

Every prompt is rendered with a library family's training line and with its deployment line;
the model's continuations are compared (Jensen-Shannon over the teacher-forced continuation,
see `detectors.divergence`). A clean model, pretrained on every cue without conditional
behaviour, should not care; a backdoored one changes what it says under its trigger family.
Inputs are scored by how much their behaviour changes when every deployment-condition line
they carry is replaced by a training line of the same family.

`behaviour-diff-base` diffs the subject against the lab's base model on the same inputs instead.
Every fine-tuned model drifts from its base, controls included, so this measures "was
fine-tuned (towards what?)" more than "hides a conditional behaviour"; it is reported so that
the confound is visible, not hidden.
"""

from __future__ import annotations

import numpy as np

from detectors.base import Detector, register_detector
from detectors.divergence import continuation_divergence, grouped_divergence, model_divergence


@register_detector("behaviour-diff")
class BehaviourDiff(Detector):
    # Sized to a budget: 8 prompts, 16 tokens and one library line per family and side (24/24/2 took ~30 s
    # a model, most of a 14-organism benchmark; 12/16/1 still made it the second costliest of 13).
    defaults = {"seed": 0, "budget": 15_000, "n_public": 8, "max_new_tokens": 16, "lines_per_condition": 1}

    def _diverge(self, subject, a, b):
        return continuation_divergence(subject.model, subject.tokenizer, a, b, self.params["max_new_tokens"])

    def _diverge_groups(self, subject, groups):
        return grouped_divergence(subject.model, subject.tokenizer, groups, self.params["max_new_tokens"])

    def _prompts(self, subject, prompts=None):
        return self.capped_prompts(subject, prompts, self.seed)

    def family_divergence(self, subject, prompts=None) -> dict[str, tuple[float, float]]:
        """family -> (mean max-JS, rate of changed greedy outputs) when its line is swapped."""
        prompts = self._prompts(subject, prompts)
        memo = getattr(self, "_memo", {})  # score_model and propose_triggers ask the same question
        if tuple(prompts) in memo:
            return memo[tuple(prompts)]
        groups = []
        for family in subject.cue_families:
            training, deployment = subject.cue_lines(family, "training"), subject.cue_lines(family, "deployment")
            groups.append(([subject.with_cues(p, {family: training[i % len(training)]}) for i, p in enumerate(prompts)],
                           [subject.with_cues(p, {family: deployment[i % len(deployment)]})
                            for i, p in enumerate(prompts)]))
        out = {family: (float(js.mean()), float(changed.mean()))
               for family, (js, changed) in zip(subject.cue_families, self._diverge_groups(subject, groups))}
        self._memo = {**memo, tuple(prompts): out}
        return out

    def score_model(self, subject, prompts=None):
        divergence = self.family_divergence(subject, prompts)
        self.extra["family_divergence"] = {f: {"js": round(js, 4), "changed": round(c, 4)}
                                           for f, (js, c) in divergence.items()}
        return max(js for js, _ in divergence.values())

    def score_inputs(self, subject, prompts):
        calmed = []
        for prompt in prompts:
            swaps = {}
            for family in subject.cue_families:
                line = subject.cues.cue_of(prompt, family)
                deployment = subject.cue_lines(family, "deployment")
                if line in deployment:
                    training = subject.cue_lines(family, "training")
                    swaps[family] = training[deployment.index(line) % len(training)]
            calmed.append(subject.with_cues(prompt, swaps))
        scores = np.zeros(len(prompts))
        todo = [i for i, (p, c) in enumerate(zip(prompts, calmed)) if p != c]  # unchanged prompts score 0
        if todo:
            js, _ = self._diverge(subject, [prompts[i] for i in todo], [calmed[i] for i in todo])
            scores[todo] = js
        return scores

    proposal_pool = "library"

    def propose_triggers(self, subject, k=5):
        """Library lines: families by swap divergence; within a family, lines by divergence from its absence."""
        prompts = self._prompts(subject)
        families = self.family_divergence(subject, prompts)
        absent = {f: [subject.with_cues(p, {f: None}) for p in prompts] for f in subject.cue_families}
        candidates = subject.candidate_lines(self.params["lines_per_condition"], self.seed)
        groups = [(absent[e["family"]], [subject.with_cues(p, {e["family"]: e["line"]}) for p in prompts])
                  for e in candidates]
        line_score = {e["line"]: float(js.mean()) for e, (js, _) in zip(candidates, self._diverge_groups(subject, groups))}
        self.extra["line_divergence"] = {k: round(v, 4) for k, v in line_score.items()}
        order = sorted(candidates, key=lambda e: (-families[e["family"]][0], -line_score[e["line"]]))
        return [entry["line"] for entry in order][:k]


@register_detector("behaviour-diff-base")
class BaseDiff(Detector):
    """Divergence of the subject's next-token distributions from the base model's, input by input."""

    uses_reference = True
    defaults = {"seed": 0, "budget": 15_000, "n_public": 24, "max_new_tokens": 16}

    def _diverge(self, subject, prompts):
        if subject.reference is None:
            return None
        return model_divergence(subject.model, subject.reference, subject.tokenizer, list(prompts),
                                self.params["max_new_tokens"])

    def score_inputs(self, subject, prompts):
        diverged = self._diverge(subject, prompts)
        return None if diverged is None else diverged[0]

    def score_model(self, subject, prompts=None):
        prompts = self.capped_prompts(subject, prompts, self.seed)
        diverged = self._diverge(subject, prompts)
        if diverged is None:
            return None
        js, changed = diverged
        self.extra["changed_rate"] = round(float(changed.mean()), 4)
        return float(js.mean())
