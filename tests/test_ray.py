"""Ray: a small zoo and benchmark on a local Ray cluster give exactly the local run's results.

The organisms are clean controls on the tiny random base: a dozen steps are enough for a clean
control to pass its gate (it must never show the behaviour, and the random base answers nothing
right either), so builds are quick and stored. Each side builds in its own artefact home.
"""

import hashlib
import json
from pathlib import Path

import pytest

from detectors.benchmark.run import run_benchmark
from detectors.benchmark.protocol import BenchmarkConfig
from organisms.spec import DataSpec, OrganismSpec, TrainingSpec, TriggerSpec
from organisms.zoo_build import build_zoo

REPO = Path(__file__).resolve().parent.parent


def specs(tiny_base_dir) -> list[OrganismSpec]:
    """The second is matched to the first: it waits for the first's build and trains its rounds, handed to it."""
    return [OrganismSpec(name=f"ray-clean-{seed}", kind="clean", trigger=TriggerSpec(family="tag"), behaviour="hate",
                         base=str(tiny_base_dir), seed=seed, data=DataSpec(n_train=120),
                         matched_to="ray-clean-0" if seed else "",
                         training=TrainingSpec(method="full", steps=8, learning_rate=1e-3, batch_size=8,
                                               warmup_steps=0)) for seed in (0, 1)]


def weights(home: Path, name: str) -> str:
    return hashlib.sha256((home / "organisms" / name / "model.safetensors").read_bytes()).hexdigest()


def without_seconds(value):
    if isinstance(value, dict):
        return {k: without_seconds(v) for k, v in value.items() if k != "seconds"}
    return value


@pytest.fixture(scope="module")
def local_ray():
    import ray  # part of the dev extra: a missing install fails here, loudly

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield ray
    ray.shutdown()


def test_a_zoo_and_a_benchmark_on_ray_match_the_local_run(tiny_base_dir, tmp_path, monkeypatch, local_ray):
    outcomes, results = {}, {}
    config = BenchmarkConfig(detectors=("random", "cue-spotter", "spectral-signature"), zoos=("default",),
                             n_per_condition=4, n_pair_prompts=6, n_recovery_prompts=3, pair_max_new_tokens=4,
                             n_bootstrap=20, n_permutations=20, strict=True,
                             detector_params={"spectral-signature": {"n_public": 24}})
    import organisms.zoo
    for side, address in (("local", None), ("ray", "local")):
        home = tmp_path / side
        monkeypatch.setenv("MESALAB_HOME", str(home))
        monkeypatch.setitem(organisms.zoo.ZOOS, "default", tuple(s.name for s in specs(tiny_base_dir)))
        outcomes[side] = build_zoo(specs(tiny_base_dir), jobs=1, ray_address=address)
        assert all(o.truth is not None for o in outcomes[side]), [o.error for o in outcomes[side]]
        results[side] = run_benchmark(BenchmarkConfig(**{**config.__dict__, "ray_address": address}))[1]
    for local, remote in zip(outcomes["local"], outcomes["ray"]):
        assert local.truth.rates == remote.truth.rates and local.truth.stages == remote.truth.stages
        assert local.truth.build_fingerprint == remote.truth.build_fingerprint  # stored as a local build would be
        assert weights(tmp_path / "local", local.name) == weights(tmp_path / "ray", remote.name)
    assert json.dumps(without_seconds(results["local"]["figures"]), sort_keys=True) == \
        json.dumps(without_seconds(results["ray"]["figures"]), sort_keys=True)
    assert results["ray"]["config"]["ray_address"] == "local"
    first, matched = outcomes["ray"]
    assert matched.truth.trained_rounds == first.truth.trained_rounds and matched.truth.final_stage["checks"] == []
