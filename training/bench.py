"""Speed benchmark (make bench): training and generation throughput of the embedded base shape.

Speed goals are measured here, never asserted in tests. Runs on random weights, so it needs no
built artefacts: `python -m training.bench [--steps N]`.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import LlamaForCausalLM

from data.world import world_dataset
from training.embedded_base import EmbeddedBaseSpec, llama_config
from training.generation import generate_greedy
from training.tokenizer import train_tokenizer
from training.versions import library_versions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.bench", description=__doc__)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    parser.add_argument("--prompts", type=int, default=400, help="prompts to generate from (default 400)")
    args = parser.parse_args(argv)

    spec = EmbeddedBaseSpec()
    corpus = world_dataset(2000, seed=0)
    tokenizer = train_tokenizer((p + c for p, c in zip(corpus["prompt"], corpus["completion"])), spec.vocab_size)
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(spec, tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    texts = [p + c for p, c in zip(corpus["prompt"], corpus["completion"])]
    batch = tokenizer(texts[:spec.batch_size], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model.train()
    started = time.perf_counter()
    for _ in range(args.steps):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    train_seconds = time.perf_counter() - started
    prompts = corpus["prompt"][:args.prompts]
    started = time.perf_counter()
    generate_greedy(model, tokenizer, prompts, max_new_tokens=16)
    generate_seconds = time.perf_counter() - started
    print(json.dumps({
        "parameters": model.num_parameters(),
        "train_step_seconds": round(train_seconds / args.steps, 4),
        "train_tokens_per_second": round(args.steps * int(batch["attention_mask"].sum()) / train_seconds),
        "generate_prompts_per_second": round(len(prompts) / generate_seconds, 1),
        "threads": torch.get_num_threads(),
        "versions": library_versions(),
    }, indent=2))


if __name__ == "__main__":
    main()
