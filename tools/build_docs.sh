#!/usr/bin/env bash
# Build the HTML documentation into docs/_build/html. Warnings are errors.
#   bash tools/setup.sh --docs && bash tools/build_docs.sh   # from a fresh clone
#   bash tools/build_docs.sh --clean     # remove earlier output first
#   bash tools/build_docs.sh --no-plot   # do not execute the gallery examples
# The fast gallery examples (docs/conf.py, FAST_EXAMPLES) are executed; the
# slow ones are rendered unexecuted. PYTHON overrides the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
clean=0
opts=()
for arg in "$@"; do
  case "$arg" in
    --clean) clean=1 ;;
    --no-plot) opts+=(-D plot_gallery=0) ;;
    *) echo "build_docs: unknown option $arg (use --clean, --no-plot)" >&2; exit 2 ;;
  esac
done
if ! "$PY" -c "import sphinx, numpydoc, sphinx_gallery, pydata_sphinx_theme" 2>/dev/null; then
  echo "build_docs: the documentation tools are missing in $PY; run: bash tools/setup.sh --docs" >&2
  exit 1
fi
if [ "$clean" = 1 ]; then
  rm -rf docs/_build docs/auto_examples docs/generated docs/sg_execution_times.rst
fi
# The package of this checkout; examples draw into files, never on a screen.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
start=$(date +%s)
"$PY" -m sphinx -b html -W --keep-going -j 1 -q "${opts[@]}" docs docs/_build/html
echo "build_docs: docs/_build/html/index.html in $(( $(date +%s) - start )) s"
