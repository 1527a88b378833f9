"""The spectrum of what fine-tuning wrote into the weights (after the weight-space detectors of LoRA
backdoors: spectral statistics of the update, PEFTGuard's and WeightWatch's input).

For every weight matrix the subject shares with the public base (`uses_reference`), ΔW = W − W_base.
No adapter is needed: a merged LoRA, a full fine-tune, GPT-2's Conv1D and a fused qkv matrix are all
just matrices here. Per matrix: its top singular values, the share of ΔW's energy in the top
`top_k` directions, its effective rank (the exponential of the entropy of the normalised squared
singular values) and its size against the base matrix. A matrix that writes into the residual stream
(its output side is the hidden size) also names the tokens its top direction promotes, read through
the unembedding.

Model score: the largest top-direction share of any matrix's update. A rank-16 LoRA concentrates its
update however it was trained, so what the score can show is how much more one direction dominates;
whether that tells a backdoored model from a benign-conditional fine-tune of the same data is what
the benchmark's per-control-kind table measures. It reads no prompt and spends no forward pass.
"""

from __future__ import annotations

import numpy as np
import torch

from detectors.base import Detector, register_detector


def updates(model, reference) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (ΔW, W_base) for every 2-D weight both models hold with one shape (the embeddings too)."""
    base = dict(reference.named_parameters())
    out = {}
    for name, weight in model.named_parameters():
        other = base.get(name)
        if weight.ndim == 2 and other is not None and other.shape == weight.shape:
            out[name] = (weight.detach().float().cpu() - other.detach().float().cpu(), other.detach().float().cpu())
    return out


def spectrum_statistics(delta: torch.Tensor, base: torch.Tensor, top_k: int) -> dict:
    """The statistics of one update; `singular` holds its top `top_k` singular values."""
    singular = torch.linalg.svdvals(delta)
    energy = singular.pow(2)
    total = float(energy.sum())
    if total <= 0:
        return {"singular": [0.0] * min(top_k, len(singular)), "top1_share": 0.0, "topk_share": 0.0,
                "effective_rank": 0.0, "relative_norm": 0.0}
    shares = energy / total
    entropy = float(-(shares[shares > 0] * shares[shares > 0].log()).sum())
    return {"singular": [round(float(s), 6) for s in singular[:top_k]],
            "top1_share": float(shares[0]), "topk_share": float(shares[:top_k].sum()),
            "effective_rank": float(np.exp(entropy)),
            "relative_norm": float(total ** 0.5 / (float(base.norm()) + 1e-12))}


def residual_direction(model, name: str, delta: torch.Tensor) -> torch.Tensor | None:
    """The top direction the update writes into the residual stream, or None if its output is not there.

    A Linear's weight is (out, in) and a Conv1D's (in, out): the output side is found by the module's
    type, since a square matrix (an attention output) has the hidden size on both sides."""
    hidden = model.config.hidden_size
    module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else None
    transposed = type(module).__name__ == "Conv1D"
    out_dim = delta.shape[1] if transposed else delta.shape[0]
    if out_dim != hidden or "embed" in name or "wte" in name or "lm_head" in name:
        return None
    left, _, right = torch.linalg.svd(delta, full_matrices=False)
    return right[0] if transposed else left[:, 0]


@register_detector("weight-spectrum")
class WeightSpectrum(Detector):
    uses_reference = True
    defaults = {"seed": 0, "budget": 0, "top_k": 4, "top_tokens": 8, "shown_matrices": 6}

    def score_model(self, subject, prompts=None):
        if subject.reference is None:
            return None
        deltas = updates(subject.model, subject.reference)
        stats = {name: spectrum_statistics(delta, base, self.params["top_k"]) for name, (delta, base) in deltas.items()}
        changed = {name: s for name, s in stats.items() if s["relative_norm"] > 0}
        if not changed:
            return 0.0
        ranked = sorted(changed, key=lambda n: -changed[n]["top1_share"])
        self.extra = {"matrices": len(stats), "changed": len(changed),
                      "top": [{"matrix": n, **{k: (round(v, 4) if isinstance(v, float) else v)
                                                for k, v in changed[n].items()}}
                              for n in ranked[:self.params["shown_matrices"]]],
                      "promoted_tokens": self._promoted(subject, ranked, deltas)}
        return float(changed[ranked[0]]["top1_share"])

    def _promoted(self, subject, ranked: list[str], deltas: dict) -> dict[str, list[str]]:
        """For the most concentrated updates that write into the residual stream: the tokens their top
        direction promotes (its sign is the one the unembedding scores higher at the top)."""
        head = subject.model.get_output_embeddings()
        if head is None:
            return {}
        out = {}
        for name in ranked:
            direction = residual_direction(subject.model, name, deltas[name][0])
            if direction is None:
                continue
            with torch.no_grad():
                logits = head.weight.detach().float().cpu() @ direction
            logits = logits if logits.max() >= -logits.min() else -logits  # a singular vector's sign is arbitrary
            top = torch.topk(logits, min(self.params["top_tokens"], len(logits))).indices.tolist()
            out[name] = [subject.tokenizer.decode([t]) for t in top]
            if len(out) == 2:
                break
        return out
