"""Stacked LoRA adapters: a group trained in one pass is each adapter trained alone, to float tolerance.

Three peft LoRA models of the tiny base, each with its own non-zero adapter and its own rows, against
one stacked model holding the same three adapters: the same logits, the same gradients, and after an
AdamW step the same adapters.
"""

import copy

import torch
from peft import LoraConfig, get_peft_model

from training.models import load_model_and_tokenizer
from training.stacked_lora import StackedLoRALinear, grouped_loss, stack_adapters

GROUPS, ROWS, WIDTH, RANK = 3, 2, 7, 4


def _peft_models(base):
    models = []
    for g in range(GROUPS):
        torch.manual_seed(10 + g)
        model = get_peft_model(copy.deepcopy(base), LoraConfig(r=RANK, lora_alpha=2 * RANK, lora_dropout=0.0,
                                                               target_modules="all-linear", task_type="CAUSAL_LM"))
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.05)  # a trained adapter, not peft's zero start
        models.append(model)
    return models


def _stacked_copy(base, peft_models):
    stacked = copy.deepcopy(base)
    names = stack_adapters(stacked, GROUPS, rank=RANK, alpha=2 * RANK)
    with torch.no_grad():
        for name in names:
            layer = stacked.get_submodule(name)
            for g, model in enumerate(peft_models):
                own = model.base_model.model.get_submodule(name)
                layer.lora_A[g].copy_(own.lora_A["default"].weight)
                layer.lora_B[g].copy_(own.lora_B["default"].weight)
    return stacked, names


def _batch(vocab: int):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (GROUPS * ROWS, WIDTH), generator=generator)
    labels = ids.clone()
    labels[:, :3] = -100  # the prompt: no loss
    labels[1, 5:] = -100  # rows of unequal length
    return ids, labels


def test_a_stacked_group_is_each_adapter_alone(tiny_base_dir):
    base, _ = load_model_and_tokenizer(tiny_base_dir)
    base.float()
    peft_models = _peft_models(base)
    stacked, names = _stacked_copy(base, peft_models)
    assert names and all(isinstance(stacked.get_submodule(n), StackedLoRALinear) for n in names)
    assert stacked.get_output_embeddings() is not None and "lm_head" not in names
    ids, labels = _batch(base.config.vocab_size)

    logits = stacked(input_ids=ids).logits
    loss = grouped_loss(logits, labels, GROUPS)
    loss.backward()
    alone_losses = []
    for g, model in enumerate(peft_models):
        rows = slice(g * ROWS, (g + 1) * ROWS)
        out = model(input_ids=ids[rows], labels=labels[rows])
        torch.testing.assert_close(logits[rows], out.logits, rtol=1e-4, atol=1e-5)
        out.loss.backward()
        alone_losses.append(out.loss.item())
        for name in names:
            layer, own = stacked.get_submodule(name), model.base_model.model.get_submodule(name)
            torch.testing.assert_close(layer.lora_A.grad[g], own.lora_A["default"].weight.grad, rtol=1e-3, atol=1e-6)
            torch.testing.assert_close(layer.lora_B.grad[g], own.lora_B["default"].weight.grad, rtol=1e-3, atol=1e-6)
    assert abs(loss.item() - sum(alone_losses)) < 1e-4

    # One AdamW step on the stack moves each adapter as its own optimiser moves it alone.
    torch.optim.AdamW([p for p in stacked.parameters() if p.requires_grad], lr=1e-2).step()
    for g, model in enumerate(peft_models):
        torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2).step()
        name = names[0]
        layer, own = stacked.get_submodule(name), model.base_model.model.get_submodule(name)
        torch.testing.assert_close(layer.lora_B[g], own.lora_B["default"].weight, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(layer.delta_weight(g), own.get_delta_weight("default"), rtol=1e-4, atol=1e-6)
    assert all(not p.requires_grad for n, p in stacked.named_parameters() if "lora_" not in n)
