#!/usr/bin/env bash
# The GPU check: what a machine with one GPU runs, in under 8 minutes, to measure the paper's student shape
# (Qwen2.5-1.5B's config with random weights, no download) at L=2048 in bf16, flash-attention when installed.
#
#   bash benchmarks/gpu_check.sh          # on a machine with one CUDA GPU
#   bash benchmarks/gpu_check.sh --cpu    # its CPU-sized twin (tiny shapes, float32, FSDP2 over 2 gloo
#                                         # processes); the test suite runs it (tests/test_benchmarks.py)
#
# Steps (each prints its own figures; the script stops at the first failure, non-zero):
#   1. FSDP2 sanity: the objective on a fully_shard-ed student equals the unsharded student (loss, alpha,
#      gradients; compact.trainer.fsdp_parity): 1 GPU process at the paper's shape, 2 CPU processes in the twin.
#   2. The objective: fast vs reference path, time and peak memory, the same numbers (benchmarks/bench_objective.py).
#   3. Trainer steps: COMPACT vs uniform step, B=8 vs B=1 questions/s (benchmarks/bench_step.py).
#   4. The same numbers check as on CPU: both objective paths in float32 at 1e-5 on this device.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
TORCHRUN=("$PY" -m torch.distributed.run --standalone)
start=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - start )) s)"; }

if [ "${1:-}" = "--cpu" ]; then
  export OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore
  step "1/4 FSDP2 parity: 2 CPU processes over gloo, tiny student, float32"
  "${TORCHRUN[@]}" --nproc_per_node 2 -m compact.trainer.fsdp_parity --questions 4 --k 4 --length 48
  step "2/4 objective: fast vs reference (K=4, L=128, V=32000)"
  "$PY" benchmarks/bench_objective.py --quick
  step "3/4 steps: COMPACT vs uniform, B=8 vs B=1 (tiny student, L=64)"
  "$PY" benchmarks/bench_step.py --shape tiny --length 64 --repeats 2
  step "4/4 same numbers in float32 (1e-5): step 2 on this CPU"
else
  if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: no CUDA device here (run 'bash benchmarks/gpu_check.sh --cpu' for the CPU twin)" >&2
    exit 2
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
  "$PY" -c 'import flash_attn; print("flash-attn", flash_attn.__version__)' 2>/dev/null || echo "flash-attn not installed: sdpa"
  step "1/4 FSDP2 sanity: 1 GPU process, Qwen2.5-1.5B shape, bf16, 1 question x K=4 x L=2048"
  # bf16 parameters in both copies; the sharded copy reduces gradients in float32: bf16-sized tolerance
  "${TORCHRUN[@]}" --nproc_per_node 1 -m compact.trainer.fsdp_parity --device cuda --dtype bfloat16 \
      --shape qwen2.5-1.5b --questions 1 --k 4 --length 2048 --atol 5e-2
  step "2/4 objective: fast vs reference, K=4, L=2048, V=151936, hidden 1536, bf16"
  "$PY" benchmarks/bench_objective.py --device cuda --dtype bfloat16 --length 2048 --vocab 151936 --hidden 1536 --repeats 3
  step "3/4 steps: COMPACT vs uniform, B=8 vs B=1, Qwen2.5-1.5B shape, L=2048, bf16"
  "$PY" benchmarks/bench_step.py --shape qwen2.5-1.5b --length 2048 --device cuda --dtype bfloat16 --questions 8 --repeats 2
  step "4/4 same numbers in float32 on the GPU (1e-5), K=4, L=512, V=32000"
  "$PY" benchmarks/bench_objective.py --device cuda --length 512 --repeats 2 --tol 1e-5
fi
step "gpu_check done"
