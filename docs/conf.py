"""Sphinx configuration of the sklottery documentation.

Build with ``bash tools/build_docs.sh`` (HTML in ``docs/_build/html``).
Warnings are errors there (``-W --keep-going``).
"""

import inspect
import os
import re
import sys

# The package from this checkout, and the gallery helpers next to this file.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..")))
sys.path.insert(0, os.path.join(HERE, "sphinxext"))

import sklottery  # noqa: E402

project = "sklottery"
author = "the sklottery developers"
copyright = "2026, the sklottery developers"
release = sklottery.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "readme_tables",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.md5", "auto_examples/*.json"]
default_role = "literal"
root_doc = "index"

# -- API reference ---------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
# numpydoc writes the parameter tables; the class template lists the methods.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- HTML ------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklottery {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    # examples get the full width: long code lines, wide figures
    "secondary_sidebar_items": {
        "index": ["page-toc"], "getting_started": ["page-toc"], "api": ["page-toc"],
        "user_guide/*": ["page-toc"], "generated/*": ["page-toc"],
        "reproduce": ["page-toc"], "references": ["page-toc"], "auto_examples/*": [],
    },
}
html_sidebars = {"index": [], "getting_started": [], "reproduce": [], "references": []}

# -- Gallery ---------------------------------------------------------------
# Executed while building: the examples measured to run in under ~20 s on
# the project's two CPU cores. quickstart.py: 7 s. The next fastest,
# plot_regression_diabetes.py, took 26-35 s (5 trials x 3 strategies), and
# the others 40 s to 7 min, so they are rendered with their code and text
# but not run; running them as scripts gives their tables and figures.
FAST_EXAMPLES = ("quickstart",)

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"[\\/](%s)\.py$" % "|".join(FAST_EXAMPLES),
    "ignore_pattern": r"__init__\.py",
    "reset_argv": "gallery_args.reset_argv",
    "within_subsection_order": "gallery_args.ExampleOrder",
    "doc_module": ("sklottery",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"sklottery": None},
    "abort_on_example_error": True,
    "min_reported_time": 0,
    "remove_config_comments": True,
    "show_memory": False,
    "download_all_examples": False,
    "capture_repr": ("_repr_html_", "__repr__"),
}


# -- Inherited scikit-learn docstrings ---------------------------------------
# ``score`` comes from scikit-learn's mixins, whose docstrings link into
# scikit-learn's own user guide (``:ref:``, ``:term:``). Those targets do not
# exist here (and intersphinx needs the network), so they are shown as text.
_SKLEARN_XREF = re.compile(r":(?:ref|term):`([^`<]*?)\s*(?:<([^>]*)>)?`")


def _plain_sklearn_xrefs(app, what, name, obj, options, lines):
    if (getattr(obj, "__module__", None) or "").startswith("sklearn"):
        lines[:] = [_SKLEARN_XREF.sub(lambda m: m.group(1).strip() or m.group(2), line)
                    for line in lines]


# A constant without a ``#:`` comment would show its type's docstring (a
# tuple's "Built-in immutable sequence..."); api.rst describes those itself.
def _no_type_docstrings(app, what, name, obj, options, lines):
    if what == "data" and lines:
        own = inspect.getdoc(type(obj))
        if own and "\n".join(lines).strip() == own.strip():
            lines[:] = []


def setup(app):
    app.connect("autodoc-process-docstring", _plain_sklearn_xrefs, priority=400)
    app.connect("autodoc-process-docstring", _no_type_docstrings, priority=400)
