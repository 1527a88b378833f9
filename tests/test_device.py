"""Device placement: the forkserver that benchmark cells are forked from never touches CUDA, and the GPU
check's random base is the size it claims ($MESALAB_DEVICE itself: tests/test_store_and_models.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM

from data.store import REPO_ROOT
from training.architectures import TinyShape, tiny_config, tokenizer_variant
from tools.gpu_check import SHAPES, VOCAB_SIZE
from training.tokenizer import train_tokenizer

# Counts every call that would initialise CUDA (or its driver) in this process, then imports the cell
# server as the forkserver does. A CUDA context does not survive a fork: were the server to make one,
# every cell forked from it would fail on a GPU.
PROBE = """
import json, torch
calls = []
def spy(name, original):
    def wrapper(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)
    return wrapper
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "get_device_properties",
             "is_bf16_supported", "set_device"):
    setattr(torch.cuda, name, spy(name, getattr(torch.cuda, name)))
if hasattr(torch._C, "_cuda_getDeviceCount"):
    torch._C._cuda_getDeviceCount = spy("_cuda_getDeviceCount", torch._C._cuda_getDeviceCount)
import detectors.benchmark.cell_server
print(json.dumps(calls))
"""


def test_the_cell_server_never_touches_cuda():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MESALAB_DEVICE": "cuda"}  # read only when a model loads
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_gpu_check_base_is_about_half_a_billion_parameters():
    tokenizer = tokenizer_variant(train_tokenizer(["User: What is 2 + 3?\nAssistant: 5"] * 20, VOCAB_SIZE),
                                  bos=False, pad=True, chat_template=True)
    config = tiny_config("qwen2", tokenizer, TinyShape(**SHAPES["0.5b"]))
    config.vocab_size = VOCAB_SIZE  # the world tokenizer's size; this small corpus yields fewer tokens
    with torch.device("meta"):  # shapes only: no memory, no time
        model = AutoModelForCausalLM.from_config(config)
    assert 0.45e9 < model.num_parameters() < 0.55e9
