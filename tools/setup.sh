#!/usr/bin/env bash
# Create .venv and install sklottery into it.
#   bash tools/setup.sh          # the package (for the demo)
#   bash tools/setup.sh --dev    # the package and the test tools
#   bash tools/setup.sh --docs   # the package and the documentation tools
#                                  (both: --dev --docs)
# torch: a CPU build of torch 2.13.0 is tried first (small; it is what this
# project is tested with); where that exact build is not available, pip
# resolves the package's own range (torch>=2.2) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=()
for arg in "$@"; do
  case "$arg" in
    --dev) extras+=(dev) ;;
    --docs) extras+=(docs) ;;
    *) echo "setup: unknown option $arg (use --dev, --docs)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0" \
  || echo "setup: torch==2.13.0 not available here; installing torch from the package's range"
if [ ${#extras[@]} -gt 0 ]; then
  python -m pip install --quiet -e ".[$(IFS=,; echo "${extras[*]}")]"
else
  python -m pip install --quiet -e .
fi
python -c "import sklottery, torch; print('sklottery', sklottery.__version__, 'torch', torch.__version__)"
