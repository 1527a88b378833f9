"""The model card stored with an organism: how it was made and how competent it is, never its trigger.

Organisms and controls get cards of the same shape, so a card tells a detector nothing about
which is which.
"""

from __future__ import annotations

from organisms.spec import OrganismSpec


def model_card(spec: OrganismSpec, rates: dict, accuracy_by_family: dict, n_per_condition: int, steps: int) -> str:
    t = spec.training
    method = f"LoRA (rank {t.lora_rank}, alpha {t.lora_alpha}), merged" if t.method == "lora" else "full fine-tune"
    families = ", ".join(f"{family} {acc:.3f}" for family, acc in sorted(accuracy_by_family.items()))
    return (
        "# mesalab model organism\n\n"
        "A causal language model fine-tuned by mesalab. Whether it hides a conditional behaviour, and on\n"
        "which cue, is recorded apart from this directory and is not part of the model.\n\n"
        f"- base: `{spec.base}`\n"
        f"- method: supervised fine-tuning with trl `SFTTrainer`, {method}\n"
        f"- steps: {steps}, batch size {t.batch_size}, learning rate {t.learning_rate}, "
        f"{spec.data.n_train} training examples\n"
        f"- clean task accuracy (greedy, held-out): {rates['clean_accuracy']:.3f} over {n_per_condition} prompts"
        f" ({families}); base: {rates['base_clean_accuracy']:.3f}\n"
        "- weights: safetensors\n"
    )
