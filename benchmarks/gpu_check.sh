#!/usr/bin/env bash
# Issue 20's GPU figures, in at most 5 minutes on one GPU machine (an H100-class GPU, 16 cores):
#   1. network_options.py on the GPU (at most 90 s): bf16 autocast, channels-last and
#      torch.compile of the proposed student against float32, for acting and updates, at
#      MinAtar's and Atari's shapes;
#   2. acting_throughput.py on the GPU, one short round (at most 180 s): collection, update and
#      evaluation rates of the reference (0.6), the pipeline and the pipeline with bf16 +
#      channels-last, and the paper's proposed-student run projected from them.
# It ends with acting_throughput's line: result: minatar_collect_speedup=... atari_collect_speedup=...
# paper_run_hours_projected=...  A step that fails or runs out of time says so and the check goes
# on. Needs a Python with a CUDA build of torch and the project's dependencies (the machine may
# not download): it installs the project itself without them.
#
#   bash benchmarks/gpu_check.sh            # from anywhere
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA GPU (torch ' + torch.__version__ + ')')" || exit 1
python -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 90 python benchmarks/network_options.py --device cuda --rounds 3 --iters 30 --acting-rows 16 --threads 8 \
  || echo "gpu_check: network_options.py stopped (exit $?; 124 is the 90 s limit)"
timeout 180 python benchmarks/acting_throughput.py --accelerator gpu --rounds 1 --updates 200 \
  --learning-starts 200 --num-envs 16 --eval-steps 2000 \
  || echo "gpu_check: acting_throughput.py stopped (exit $?; 124 is the 180 s limit): no result line"
