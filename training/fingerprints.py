"""Content fingerprints: caches and built artefacts are keyed by a hash of what produces them, never by a
version number someone must remember to bump.

Two kinds. `content_digest` hashes produced content (the rows a base pretrains on, the specs a
generator draws), so it changes exactly when the content does. `code_digest` hashes code whose
effect cannot be sampled (how a rate is measured): its syntax tree, without comments, docstrings or
line numbers, so a comment or a reflowed line changes nothing and any change to what runs does. (The
tree's dump is Python's own, so a new Python version may re-key once; the lab pins 3.11.)
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import inspect
import json

DIGEST_CHARS = 16


def content_digest(value) -> str:
    """A hash of JSON-able content, independent of dict order."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:DIGEST_CHARS]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(source: str) -> str:
    """A hash of Python source as its syntax tree: comments, docstrings and layout do not count."""
    return content_digest(ast.dump(_without_docstrings(ast.parse(source)), include_attributes=False))


@functools.lru_cache(maxsize=None)
def code_digest(*modules: str) -> str:
    """A hash of the named modules' code (`source_digest` of each, by name)."""
    return content_digest({name: source_digest(inspect.getsource(importlib.import_module(name))) for name in modules})
