"""Several LoRA adapters on one frozen base, trained in one pass: a candidate for training a backdoor and
its matched controls together, kept as `make bench`'s contender and not used by builds, because on the
2-core CPU it is slower (a stacked step of three adapters took 1.14x three bare steps; docs/performance.md).

A backdoor and its matched controls train with the same prompts, seed and steps, each on rows of its
own. Stacked, every adapted linear layer runs the base's product once over all the groups' rows, and
the adapters' low-rank products as one batched product (`torch.bmm`), group g's rows through adapter g
only. That pays where a step is bound by per-operation overhead (small batches on a large device); on
this CPU a step's operations are already large (32 rows x ~54 tokens), and three times the rows cost
three times the time.

Each group's loss is the mean over its own label tokens, and the step minimises their sum, so every
adapter gets exactly the gradient it would get alone; AdamW is elementwise, so one optimiser over the
stacked parameters steps each adapter as its own would. (A global gradient-norm clip would couple them:
clip per group.) Written by hand because peft's mixed-adapter batches (`adapter_names=`) serve inference
only and loop over the adapters one at a time.

Only `nn.Linear` layers are stacked here (Llama, Qwen2, GPT-NeoX); GPT-2's Conv1D is not yet.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class StackedLoRALinear(nn.Module):
    """`base(x) + (alpha / rank) · B_g A_g x` for the rows of group g; rows arrive grouped, `groups` equal blocks."""

    def __init__(self, base: nn.Linear, groups: int, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.groups, self.scale = groups, alpha / rank
        # peft's initialisation: A as nn.Linear's default (Kaiming uniform, a = √5), B zero.
        bound = 1 / math.sqrt(base.in_features)
        self.lora_A = nn.Parameter(torch.empty(groups, rank, base.in_features).uniform_(-bound, bound, generator=generator))
        self.lora_B = nn.Parameter(torch.zeros(groups, base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        grouped = x.reshape(self.groups, -1, x.shape[-1])  # (groups, rows·positions, in)
        delta = torch.bmm(torch.bmm(grouped, self.lora_A.transpose(1, 2)), self.lora_B.transpose(1, 2))
        return out + self.scale * delta.reshape(out.shape)

    def delta_weight(self, group: int) -> torch.Tensor:
        """Group `group`'s update of the base weight, (out, in): what merging its adapter adds."""
        return self.scale * self.lora_B[group] @ self.lora_A[group]


def stack_adapters(model: nn.Module, groups: int, rank: int = 16, alpha: float = 32, seed: int = 0) -> list[str]:
    """Replace, in place, every `nn.Linear` of the blocks (the output head left out, as peft's "all-linear")
    by a `StackedLoRALinear` of `groups` adapters; returns the replaced layers' names."""
    head = model.get_output_embeddings()
    generator = torch.Generator().manual_seed(seed)
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear) and module is not head]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, StackedLoRALinear(getattr(parent, child), groups, rank, alpha, generator))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, StackedLoRALinear):
            module.lora_A.requires_grad_(True)
            module.lora_B.requires_grad_(True)
    return names


def grouped_loss(logits: torch.Tensor, labels: torch.Tensor, groups: int) -> torch.Tensor:
    """The sum over groups of each group's mean next-token loss on its own label tokens (-100 ignored)."""
    shifted, targets = logits[:, :-1].float(), labels[:, 1:]
    per_token = nn.functional.cross_entropy(shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1),
                                            ignore_index=-100, reduction="none").reshape(targets.shape)
    counted = (targets != -100).float()
    per_group = (per_token * counted).reshape(groups, -1).sum(1) / counted.reshape(groups, -1).sum(1).clamp(min=1)
    return per_group.sum()
