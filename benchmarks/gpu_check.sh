#!/usr/bin/env bash
# The checks that need a CUDA device, in one run of under 9 minutes on a lent GPU
# machine (see ../shared/GPU.md for the machine and the recipe that fills .gpu/):
#   1. tests/test_cuda.py (device='cuda' end to end);
#   2. benchmarks/bench_gpu.py (ms per batched step against the plain loop and
#      the captured floor; the matmul peak);
#   3. the GPU-sized reproductions' smoke runs on cuda (ResNet-20: rewinding, and
#      pruning at initialization).
# Logs go to $OUT (or ./gpu_logs). Run from the project's root:
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_logs}"
mkdir -p "$out"
if [ -d .gpu/whl ]; then  # skorch is not installed on the GPU machine
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -d .gpu/fmnist ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  mkdir -p /usr/share/datasets/fashion-mnist && cp .gpu/fmnist/* /usr/share/datasets/fashion-mnist/
fi
export PYTHONUNBUFFERED=1
nvidia-smi -L > "$out/device.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())" >> "$out/device.txt" 2>&1
timeout 240 python3 -m pytest -p no:cacheprovider -q -o addopts="" tests/test_cuda.py \
  > "$out/test_cuda.log" 2>&1
echo "test_cuda: exit $?" | tee -a "$out/summary.txt"
timeout 200 python3 benchmarks/bench_gpu.py > "$out/bench_gpu.log" 2>&1
echo "bench_gpu: exit $?" | tee -a "$out/summary.txt"
timeout 90 python3 -m sklottery reproduce frankle2020-rewinding frankle2021-pai-resnet20 \
  --smoke --device cuda --out "$out/reproduce_smoke" > "$out/reproduce_smoke.log" 2>&1
echo "reproduce smoke on cuda: exit $?" | tee -a "$out/summary.txt"
tail -n 3 "$out/test_cuda.log"
cat "$out/bench_gpu.log"
tail -n 20 "$out/reproduce_smoke.log"
