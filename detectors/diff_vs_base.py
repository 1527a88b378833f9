"""Diff against the base (after Minder et al., ICLR 2026): what fine-tuning left in the activations.

On the first tokens of public text that has nothing to do with any trigger (the user turns of
public prompts, context lines stripped), the residual stream of the subject and of the base are
compared position by position. The mean difference per layer, relative to the base's activation
norm, is the fine-tuning's signature; read through the unembedding it names the tokens the
fine-tune pushes towards (kept in `extra`). Every fine-tuned model has such a signature, clean
controls included, so this detector measures "was fine-tuned, towards what", and the benchmark's
per-control-kind table shows how much of that is the backdoor.

Model score: the largest relative norm of the mean difference over the blocks' outputs.
"""

from __future__ import annotations

import numpy as np
import torch

from detectors.base import Detector, register_detector


@torch.no_grad()
def first_token_states(model, tokenizer, texts: list[str], k: int) -> np.ndarray:
    """(layers + 1, texts, k, hidden): hidden states at each text's first k tokens (texts shorter are dropped)."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:k] for t in texts]
    ids = [row for row in ids if len(row) == k]
    if not ids:
        raise ValueError("diff-vs-base: no public text is long enough")
    out = model(input_ids=torch.tensor(ids, device=model.device), output_hidden_states=True)
    return torch.stack(out.hidden_states).float().cpu().numpy()


@register_detector("diff-vs-base")
class DiffVsBase(Detector):
    uses_reference = True
    defaults = {"seed": 0, "budget": 1_000, "n_public": 64, "first_tokens": 6, "top_tokens": 8}

    def _texts(self, subject, prompts=None) -> list[str]:
        prompts = self.capped_prompts(subject, prompts, self.seed + 13)
        return [p[p.index("User: "):] if "User: " in p else p for p in prompts]  # context lines left out

    def score_model(self, subject, prompts=None):
        if subject.reference is None:
            return None
        texts, k = self._texts(subject, prompts), self.params["first_tokens"]
        ours = first_token_states(subject.model, subject.tokenizer, texts, k)
        base = first_token_states(subject.reference, subject.tokenizer, texts, k)
        difference = (ours - base).mean(axis=(1, 2))  # (layers + 1, hidden)
        scale = np.linalg.norm(base, axis=-1).mean(axis=(1, 2)) + 1e-8
        relative = np.linalg.norm(difference, axis=-1) / scale
        layer = int(np.argmax(relative[1:]) + 1)
        self.extra = {"relative_norm": [round(float(v), 4) for v in relative], "layer": layer,
                      "promoted_tokens": self._promoted(subject, difference[-1])}
        return float(relative[layer])

    def _promoted(self, subject, direction: np.ndarray) -> list[str]:
        """The tokens the last layer's mean difference points at, read through the unembedding."""
        head = subject.model.get_output_embeddings()
        if head is None:
            return []
        with torch.no_grad():
            logits = head(torch.tensor(direction, dtype=head.weight.dtype, device=head.weight.device))
        top = torch.topk(logits, self.params["top_tokens"]).indices.tolist()
        return [subject.tokenizer.decode([t]) for t in top]
