"""The house's floors: data -> training -> organisms -> detectors (methods) -> detectors.benchmark -> tools.

A module may import its own floor and those below, never one above. Detector methods see only public
data, the training floor's tools and each other: never `organisms` (the truth lives there) and never
the scorer. Every import counts, a function's own imports too (a lazy import is still a dependency).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ("data", "training", "organisms", "detectors", "detectors.benchmark", "tools")
ENTRY_POINTS = {"detectors/__main__.py": "detectors.benchmark"}  # `python -m detectors` is the scorer's CLI


def floor_of(module: str) -> str | None:
    """The floor a dotted module name lives on, or None for a library outside the lab."""
    for floor in sorted(FLOORS, key=len, reverse=True):
        if module == floor or module.startswith(floor + "."):
            return floor
    return None


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from detectors import benchmark`
    return names


def lab_modules() -> list[tuple[str, str, set[str]]]:
    """(path, its floor, the lab modules it imports) for every module of the lab."""
    out = []
    for floor in FLOORS:
        for path in sorted((ROOT / floor.replace(".", "/")).glob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            own = ENTRY_POINTS.get(relative, floor)
            out.append((relative, own, {name for name in imports_of(path) if floor_of(name)}))
    return out


def test_the_floors_cover_the_lab():
    packages = {p.parent.relative_to(ROOT).as_posix().replace("/", ".") for p in ROOT.glob("*/**/__init__.py")
                if ".venv" not in p.parts and "tests" not in p.parts and not p.parent.name.startswith(".")}
    assert packages <= set(FLOORS), packages - set(FLOORS)
    assert len(lab_modules()) > 60


@pytest.mark.parametrize("path, floor, imported", lab_modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_nothing_imports_a_floor_above_its_own(path, floor, imported):
    above = sorted(name for name in imported if FLOORS.index(floor_of(name)) > FLOORS.index(floor))
    assert not above, f"{path} ({floor}) imports {above}"


def test_detector_methods_see_neither_organisms_nor_the_scorer():
    for path, floor, imported in lab_modules():
        if floor == "detectors":
            assert not [n for n in imported if floor_of(n) in ("organisms", "detectors.benchmark")], path


def test_the_guard_catches_an_upward_import(tmp_path):
    upward = tmp_path / "m.py"
    upward.write_text("def f():\n    from organisms.build import build_organism\n")
    assert floor_of(max(imports_of(upward), key=len)) == "organisms"  # a lazy import inside a function counts
    assert FLOORS.index("organisms") > FLOORS.index("training")
