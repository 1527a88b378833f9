"""Supervised fine-tuning with trl's SFTTrainer: the one training loop of the lab.

Datasets are prompt/completion pairs, so the loss covers completions only. LoRA adapters are
merged back into the weights, so every stage hands on a plain model directory.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import torch
from datasets import Dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer


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


def run_sft(model, tokenizer, dataset: Dataset, run: SFTRun, progress: bool = True):
    """Train `model` on `dataset` (columns prompt, completion) and return the trained, merged model."""
    peft_config = None
    if run.method == "lora":
        peft_config = LoraConfig(r=run.lora_rank, lora_alpha=run.lora_alpha, lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    accelerated = torch.cuda.is_available()
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
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset.select_columns(["prompt", "completion"]),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        trainer.train()
        trained = trainer.model
    if peft_config is not None:
        trained = trained.merge_and_unload()
    trained.eval()
    return trained
