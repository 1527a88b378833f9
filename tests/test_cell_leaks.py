"""Hostile detectors, in real sealed cells, find nothing that tells a backdoor from its matched controls.

Three organisms are saved as a builder would leave them: random models of one architecture (the
weights differ), each folder with what a build writes besides (a model card whose figures differ, a
build log), at different times and with different modes, as a control built after its backdoor is.
A cell of each must show a detector the same environment, the same files with the same metadata and
the same /proc, except the weights' bytes; what the scorer's environment holds must not reach it.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import re
from collections import Counter

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from data.store import mesalab_home
from detectors.benchmark.cells import FILE_MODE, FIXED_TIME_NS, FOLDER_MODE, CellJob, CellPool, copy_model_files
from detectors.benchmark.seal import SEALED_MESSAGE, cell_environment
from organisms.store import organism_dir

KINDS = ("backdoor", "clean", "benign-conditional")
PLANTED = {"BLIND_SEED": "424242424242", "MESALAB_SECRET": "the-trigger-is-zebra"}
RANDOM_NAME = re.compile(r"\b[0-9a-f]{12}\b")  # the copies' folder names (secrets.token_hex(6))
# What a file's metadata says about when the cell ran, not about the model: the cell's own folder and
# the folders it makes (tmp/, its cache) are made when it starts; every file's ctime and inode are set
# when the scorer copies it, and its atime when the cell reads it. The order of cells is shuffled
# every run. Everything else of every entry is compared.
WHEN_IT_RAN = ("atime_ns", "ctime_ns", "inode")
# /proc/self/status fields that count this process's own run (its pid, memory, switches) or that the
# scheduler's timing sets (its state, threads, descriptor table size, signals pending): one full run
# of the suite beside a zoo build saw a status line differ between two cells, and no rerun did.
RUN_STATUS = re.compile(r"^(Pid|PPid|Tgid|Ngid|NSpid|NStgid|NSpgid|NSsid|Vm\w+|Rss\w+|HugetlbPages|"
                        r"voluntary_ctxt_switches|nonvoluntary_ctxt_switches|SigQ|State|Threads|FDSize|"
                        r"SigPnd|ShdPnd):")


def built_like_a_builder(tiny_base_dir, name: str, seed: int, card: str, mtime: int, mode: int) -> None:
    """A random model of the tiny base's architecture saved where the organism goes, with a card and a log."""
    folder = organism_dir(name)
    torch.manual_seed(seed)
    model = LlamaForCausalLM.from_pretrained(tiny_base_dir)
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(torch.randn_like(weight) * 0.01)
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_base_dir).save_pretrained(folder)
    (folder / "README.md").write_text(card)
    (folder / "build.log").write_text(f"{name}: built\n")
    for path in [*folder.iterdir(), folder]:
        os.chmod(path, mode | (0o100 if path.is_dir() else 0))
        os.utime(path, (mtime, mtime))


@pytest.fixture
def organisms(tiny_base_dir):
    names = [f"zz-{kind}" for kind in KINDS]
    for i, name in enumerate(names):  # the controls after the backdoor, each card with its own figures
        built_like_a_builder(tiny_base_dir, name, seed=10 + i, card=f"clean accuracy {i / 2:.2f}, steps {200 + i}",
                             mtime=1_700_000_000 + 3600 * i, mode=(0o644, 0o600, 0o640)[i])
    return names


@pytest.fixture
def planted(monkeypatch):
    """Secrets in the scorer's environment, there before the cell server starts (stopped first if running:
    a server started earlier, without them, could not show a leak)."""
    multiprocessing.forkserver._forkserver._stop()  # the standard library's own stop (its tests use it)
    for key, value in PLANTED.items():
        monkeypatch.setenv(key, value)
    yield PLANTED
    multiprocessing.forkserver._forkserver._stop()  # the next pool's server starts without them


def cells_seen(names, tiny_base_dir) -> dict[str, dict]:
    jobs = [CellJob(key=(name,), detector="hostile-leaks", params={}, question="audit",
                    model_dir=str(organism_dir(name)), reference_dir=str(tiny_base_dir)) for name in names]
    with CellPool(1, guarded=[mesalab_home()], plugins=("hostile_detectors",)) as pool:
        answers = {job.key[0]: answer for job, answer in pool.run(jobs)}
    for answer in answers.values():
        assert answer.error is None, answer.extra.get("traceback")
    return {name: answer.extra for name, answer in answers.items()}


def comparable(seen: dict) -> dict:
    """What a cell saw, its random names masked and its run's own counters dropped."""
    def mask(text: str) -> str:
        return RANDOM_NAME.sub("<random>", text.replace(seen["cell"], "<cell>"))

    files = []
    for entry in seen["files"]:
        entry = {k: v for k, v in entry.items() if k not in WHEN_IT_RAN and k != "sha256"}
        entry["path"] = mask(entry["path"])
        if not entry["path"].startswith("<random>"):  # made by the cell as it started, not copied
            entry.pop("mtime_ns")
        files.append(entry)
    status = [line for line in seen["own proc"]["status"].splitlines() if not RUN_STATUS.match(line)]
    return {"environ": {k: mask(v) for k, v in seen["environ"].items()},
            "files": sorted(files, key=lambda e: sorted(e.items())),
            "proc environ": mask(seen["own proc"]["environ"]), "proc cmdline": seen["own proc"]["cmdline"],
            "proc status": status}


def file_contents(seen: dict) -> Counter:
    """(masked path, sha256) of every file the cell could read: the model's copy and the base's, both."""
    return Counter((RANDOM_NAME.sub("<random>", e["path"]), e["sha256"]) for e in seen["files"] if "sha256" in e)


def test_a_backdoors_cell_and_its_controls_cells_differ_in_the_weights_alone(organisms, planted, tiny_base_dir):
    seen = cells_seen(organisms, tiny_base_dir)
    backdoor, *controls = (seen[name] for name in organisms)
    for name, other in zip(organisms[1:], controls):
        assert comparable(other) == comparable(backdoor), name
        # One file's bytes differ: the model's weights (the base's copy, config and tokenizer hash alike).
        differing = (file_contents(backdoor) - file_contents(other)) + (file_contents(other) - file_contents(backdoor))
        assert sorted(path for path, _ in differing) == ["<random>/model.safetensors"] * 2, differing
    for extra in seen.values():
        names = {RANDOM_NAME.sub("<random>", e["path"]) for e in extra["files"]}
        assert "<random>/README.md" not in names and "<random>/build.log" not in names
        assert {"<random>/model.safetensors", "<random>/tokenizer.json", "<random>/config.json"} <= names


def test_the_scorers_environment_does_not_reach_a_cell(organisms, planted, tiny_base_dir):
    (seen,) = cells_seen(organisms[:1], tiny_base_dir).values()
    exec_time = dict(line.split("=", 1) for line in seen["own proc"]["environ"].split("\0") if "=" in line)
    for environ in (seen["environ"], exec_time):  # os.environ now, and the server's at its start
        assert not set(PLANTED) & set(environ), set(PLANTED) & set(environ)
        assert not any(value in text for value in PLANTED.values() for text in environ.values())
        assert environ["PYTHONHASHSEED"] == "0"
    assert os.environ["MESALAB_HOME"] not in seen["own proc"]["environ"]  # the scorer's home is not named
    assert set(exec_time) <= set(cell_environment(os.environ))  # the allowlist, and no more
    assert not any(value in seen["own proc"]["cmdline"] for value in PLANTED.values())


def test_other_processes_proc_entries_and_other_cells_are_refused(organisms, tiny_base_dir):
    (seen,) = cells_seen(organisms[:1], tiny_base_dir).values()
    assert seen["other pids"] > 1  # it saw other processes (its server, the scorer) and tried them all
    tried = seen["other proc"]
    assert len(tried) == 3 * seen["other pids"] + 2
    # Refused by the seal; a process that ended between the listing and the read is simply gone.
    leaked = {k: v for k, v in tried.items() if not (v.startswith(f"refused: {SEALED_MESSAGE}")
                                                       or "No such file" in v)}
    assert not leaked, leaked
    assert tried["parent by /proc/self/.."].startswith(f"refused: {SEALED_MESSAGE}")
    assert tried["parent by a folder's descriptor"].startswith(f"refused: {SEALED_MESSAGE}")
    assert seen["own proc"]["status"].startswith("Name:")  # its own /proc it may read
    assert seen["other cells"].startswith(f"refused: {SEALED_MESSAGE}"), seen["other cells"]


def test_a_cells_copy_holds_the_allowlisted_files_with_fixed_times_and_modes(organisms, tmp_path):
    copy = copy_model_files(organism_dir(organisms[1]), tmp_path / "copy")
    folder = os.stat(copy)  # before listing it: a listing (a read) sets a folder's atime under relatime
    files = {p.name: os.stat(p) for p in copy.iterdir()}
    assert sorted(files) == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                             "tokenizer_config.json"]
    for info, mode in [(folder, FOLDER_MODE), *((info, FILE_MODE) for info in files.values())]:
        assert (info.st_mtime_ns, info.st_atime_ns) == (FIXED_TIME_NS, FIXED_TIME_NS)
        assert info.st_mode & 0o7777 == mode and info.st_uid == os.getuid()
    assert (copy / "model.safetensors").read_bytes() == (organism_dir(organisms[1]) / "model.safetensors").read_bytes()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        copy_model_files(tmp_path / "nowhere", tmp_path / "copy2")
