"""The training seam's layering, read from the source (``ast``), not from a mock.

* no trainer (nothing in ``sklottery/training/``) imports the engine or
  anything above it;
* the engine and the modules above it import the training wing only through
  the package ``sklottery.training`` and only its public names, so a
  trainer's file is never named outside the wing;
* no module of the wing reads a private attribute of an object it does not
  own (``x._name`` with ``x`` other than ``self``/``cls``), and no module
  anywhere imports another module's private names;
* a new trainer is one file plus one registry line: the registry is a dict
  of classes that satisfy the :class:`~sklottery.training.Trainer` protocol.
"""

import ast
import pathlib

import pytest

import sklottery
from sklottery.training import TRAINERS, Trainer

PACKAGE = pathlib.Path(sklottery.__file__).parent
WING = PACKAGE / "training"
#: The engine and everything built on it: what no trainer may import.
ABOVE_THE_SEAM = {"base", "estimators", "analysis", "stability", "export", "inference",
                  "persistence", "reproduce", "__main__", "plotting", "datasets", "stats"}


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "_build" not in p.parts)


def _resolve(path, node):
    """The absolute dotted module an ``ImportFrom`` node of file ``path`` names."""
    if not node.level:
        return node.module or ""
    package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path):
    """``(lineno, module, name or None)`` of every import of ``path`` inside the package."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            for alias in node.names:
                out.append((node.lineno, module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node.lineno, alias.name, None))
    return [(ln, m, n) for ln, m, n in out if m == "sklottery" or m.startswith("sklottery.")]


def _rel(path):
    return str(path.relative_to(PACKAGE.parent))


def test_no_trainer_imports_the_engine_or_anything_above_it():
    bad = []
    for path in sorted(WING.glob("*.py")):
        for ln, module, name in _imports(path):
            parts = module.split(".")[1:]
            targets = [parts[0]] if parts else []
            if module == "sklottery" and name:  # from .. import base
                targets = [name]
            if any(t in ABOVE_THE_SEAM for t in targets):
                bad.append(f"{_rel(path)}:{ln} imports {module}{'.' + name if name else ''}")
    assert not bad, "\n".join(bad)


def test_outside_the_wing_only_the_package_and_its_public_names_are_imported():
    bad = []
    for path in _modules():
        if WING in path.parents:
            continue
        for ln, module, name in _imports(path):
            if module.startswith("sklottery.training."):
                bad.append(f"{_rel(path)}:{ln} names the trainer file {module}")
            elif module == "sklottery.training" and name and name.startswith("_"):
                bad.append(f"{_rel(path)}:{ln} imports the private {name}")
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_modules_private_names():
    bad = [f"{_rel(path)}:{ln} from {module} import {name}"
           for path in _modules() for ln, module, name in _imports(path)
           if name and name.startswith("_") and not name.startswith("__")]
    assert not bad, "\n".join(bad)


#: Private attributes of other objects the wing may read, each with its reason.
ALLOWED_PRIVATE = set()


def test_the_wing_reads_no_private_attribute_of_another_object():
    bad = []
    for path in sorted(WING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
                    and owner.func.id == "super"):
                continue  # its own class's method
            if node.attr in ALLOWED_PRIVATE:
                continue
            bad.append(f"{_rel(path)}:{node.lineno} reads {ast.unparse(node)}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_registered_trainer_satisfies_the_protocol(name):
    trainer = TRAINERS[name]()
    assert isinstance(trainer, Trainer)
    assert trainer.name == name
    assert isinstance(trainer.priority, int)


def test_the_layering_test_catches_a_trainer_that_imports_the_engine(tmp_path):
    """The checks above can fail: a trainer file importing the engine is caught."""
    wing = tmp_path / "sklottery" / "training"
    wing.mkdir(parents=True)
    (tmp_path / "sklottery" / "__init__.py").write_text("")
    (wing / "__init__.py").write_text("")
    (wing / "rogue.py").write_text("from ..base import BaseLotteryTicket\n"
                                   "def f(est):\n    return est._checkpoint\n")
    globals_ = globals()
    old = globals_["PACKAGE"], globals_["WING"]
    globals_["PACKAGE"], globals_["WING"] = tmp_path / "sklottery", wing
    try:
        with pytest.raises(AssertionError, match="rogue.py:1 imports sklottery.base"):
            test_no_trainer_imports_the_engine_or_anything_above_it()
        with pytest.raises(AssertionError, match=r"rogue.py:3 reads est._checkpoint"):
            test_the_wing_reads_no_private_attribute_of_another_object()
    finally:
        globals_["PACKAGE"], globals_["WING"] = old
