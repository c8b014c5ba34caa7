"""Cheap checks of the documentation sources (the full build is ``tools/build_docs.sh``).

They need no Sphinx, except the README-table test, which skips without it.
"""

import ast
import importlib
import inspect
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
EXAMPLES = os.path.join(ROOT, "examples")

# The modules the API reference documents, as in docs/api.rst.
API_MODULES = ["sklottery", "sklottery.analysis", "sklottery.stats", "sklottery.stability",
               "sklottery.plotting", "sklottery.reproduce", "sklottery.datasets",
               "sklottery.modules", "sklottery.pruning", "sklottery.strategies",
               "sklottery.base", "sklottery.exceptions", "sklottery.tickets",
               "sklottery.pai"]


def _example_files():
    return sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))


@pytest.mark.parametrize("name", _example_files())
def test_example_header_is_a_gallery_header(name):
    """sphinx-gallery needs a module docstring that opens with an rst title."""
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read()), clean=False)
    assert doc, f"{name} has no module docstring"
    lines = [line.rstrip() for line in doc.strip("\n").splitlines()]
    if set(lines[0]) == {"="}:  # overline
        lines = lines[1:]
    title, underline = lines[0].strip(), lines[1].strip()
    assert title and set(underline) == {"="}, f"{name}: the docstring must open with a title"
    assert len(underline) >= len(title), f"{name}: title underline shorter than the title"


def _conf_literal(name):
    with open(os.path.join(DOCS, "conf.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def test_fast_examples_exist():
    fast = _conf_literal("FAST_EXAMPLES")
    assert fast
    for name in fast:
        assert os.path.exists(os.path.join(EXAMPLES, name + ".py")), name


def test_gallery_order_names_every_example():
    sys.path.insert(0, os.path.join(DOCS, "sphinxext"))
    try:
        from gallery_args import ORDER
    finally:
        sys.path.pop(0)
    assert sorted(ORDER) == _example_files()


def _documented_objects():
    """Objects named in docs/api.rst (autosummary entries and autodata)."""
    with open(os.path.join(DOCS, "api.rst"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    module, in_summary, found = None, False, []
    for line in lines:
        if not line.startswith(" ") and line.strip():
            in_summary = False  # any unindented line ends an autosummary block
        m = re.match(r"\.\. (?:currentmodule|py:module):: (\S+)", line)
        if m:
            module = m.group(1)
            continue
        m = re.match(r"\.\. (?:autodata|function|autoclass|autofunction):: (\w+)", line)
        if m:
            found.append((module, m.group(1)))
            continue
        if line.startswith(".. autosummary::"):
            in_summary = True
            continue
        if in_summary and line.startswith("   ") and not line.lstrip().startswith(":"):
            found.append((module, line.strip()))
    objects = []
    for module, name in found:
        obj = getattr(importlib.import_module(module), name, None)
        assert obj is not None, f"docs/api.rst names {module}.{name}, which does not exist"
        objects.append(obj)
    return objects


def test_api_reference_lists_every_public_class_and_function():
    documented = [id(o) for o in _documented_objects()]
    missing = []
    for module in API_MODULES:
        mod = importlib.import_module(module)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in documented:
                missing.append(f"{module}.{name}")
    assert not missing, f"not in docs/api.rst: {missing}"


def test_readme_tables_of_the_results_pages():
    pytest.importorskip("sphinx")
    sys.path.insert(0, os.path.join(DOCS, "sphinxext"))
    try:
        from readme_tables import readme_tables
    finally:
        sys.path.pop(0)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    (header, rows), = readme_tables(text, "Published vs measured")
    assert header[:3] == ["experiment", "claim (paper)", "published"]
    assert len(rows) > 10
    compare = readme_tables(text, "What the comparison found on the bundled data sets")
    assert len(compare) == 2
    assert compare[0][0][:2] == ["data set", "verdict"]
