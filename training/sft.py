"""Supervised fine-tuning with trl's SFTTrainer: the one training loop of the lab.

Datasets are prompt/completion pairs, so the loss covers completions only. LoRA adapters are
merged back into the weights, so every stage hands on a plain model directory.

Text is tokenized here, not by trl, exactly as generation and the detectors tokenize it: plain
text, no chat template, no special tokens added (a tokenizer that prepends BOS would otherwise
train on a BOS that scoring never shows), the completion's end marked by the tokenizer's EOS.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers.pytorch_utils import Conv1D
from trl import SFTConfig, SFTTrainer

from training.models import model_device


class TrainingDiverged(RuntimeError):
    """Training left non-finite weights; the message says how to retry."""


def ensure_finite(model, run: "SFTRun") -> None:
    """Refuse a trained model with a NaN or infinite weight: it would measure as a quiet model (0.0 on
    every behaviour) and a clean control on a base that scores 0.0 would pass its gate."""
    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise TrainingDiverged(f"training diverged: {name} is not finite after {run.steps} steps at learning "
                                   f"rate {run.learning_rate:g} (lower it, or train in float32)")


@dataclass(frozen=True)
class SFTRun:
    steps: int
    learning_rate: float
    batch_size: int
    seed: int
    method: str = "full"  # "full" or "lora"
    lora_rank: int = 16
    lora_alpha: int = 32
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_length: int = 256
    lr_scheduler: str = "cosine"


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def tokenize_for_sft(tokenizer, dataset: Dataset) -> Dataset:
    """Columns input_ids and completion_mask: the prompt as generation tokenizes it, the completion, EOS.

    The prompt and prompt + completion are tokenized as plain text without special tokens; the
    completion starts where the two agree no longer (after the prompt, unless a token spans the
    boundary), as trl does it, and ends with the EOS token, so the model learns to stop.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; a completion could not be ended")

    def tokenize(row):
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        ids = tokenizer(row["prompt"] + row["completion"], add_special_tokens=False)["input_ids"]
        if not ids or ids[-1] != eos:
            ids = ids + [eos]
        start = _common_prefix(prompt, ids)
        return {"input_ids": ids, "completion_mask": [0] * start + [1] * (len(ids) - start)}

    return dataset.map(tokenize, remove_columns=dataset.column_names)


def lora_config(model, run: SFTRun) -> LoraConfig:
    """Adapters on every linear projection of the blocks (peft's "all-linear" leaves the output head out).

    GPT-2-style Conv1D projections store their weight as (in, out), which peft calls fan_in_fan_out.
    """
    conv1d = any(isinstance(module, Conv1D) for module in model.modules())
    return LoraConfig(r=run.lora_rank, lora_alpha=run.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                      fan_in_fan_out=conv1d, task_type="CAUSAL_LM")


def run_sft(model, tokenizer, dataset: Dataset, run: SFTRun, progress: bool = True):
    """Train `model` on `dataset` (columns prompt, completion) and return the trained, merged model."""
    peft_config = lora_config(model, run) if run.method == "lora" else None
    # Training runs where loaded models run ($MESALAB_DEVICE): trl moves the model there itself.
    accelerated = model_device() == "cuda"
    with tempfile.TemporaryDirectory(prefix="mesalab-sft-") as scratch:
        args = SFTConfig(
            output_dir=scratch,
            max_steps=run.steps,
            per_device_train_batch_size=run.batch_size,
            learning_rate=run.learning_rate,
            lr_scheduler_type=run.lr_scheduler,
            warmup_steps=run.warmup_steps,
            weight_decay=run.weight_decay,
            max_length=run.max_length,
            seed=run.seed,
            data_seed=run.seed,
            save_strategy="no",
            report_to=[],
            logging_steps=max(1, run.steps // 10),
            use_cpu=not accelerated,
            # trl defaults to bf16 and gradient checkpointing; on a CPU without bf16 units both
            # make a step over ten times slower, and float32 keeps CPU runs bit-reproducible.
            bf16=accelerated and torch.cuda.is_bf16_supported(),
            gradient_checkpointing=False,
            disable_tqdm=not progress,
            dataset_num_proc=None,
            completion_only_loss=True,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=tokenize_for_sft(tokenizer, dataset.select_columns(["prompt", "completion"])),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        trainer.train()
        trained = trainer.model
    if peft_config is not None:
        trained = trained.merge_and_unload()
    ensure_finite(trained, run)
    trained.eval()
    return trained
