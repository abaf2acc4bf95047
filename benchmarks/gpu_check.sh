#!/usr/bin/env bash
# GPU check of the trainer and the book's gpu profile, in under 9 minutes on one H100.
#
# Exact invocation, from the repository root of a copy of the working tree (no .venv needed; the
# machine's python3 has torch with CUDA, numpy, matplotlib, tqdm, scikit-image and scipy), with the
# MNIST files in .data/mnist/ (an ignored folder the caller copies in and carries) or in $DL_DATA_DIR:
#
#     bash benchmarks/gpu_check.sh             # on the GPU machine
#     bash benchmarks/gpu_check.sh --dry-run   # anywhere: the same code on the CPU, tiny sizes, ~1 minute
#
# Steps (each writes under benchmarks/results/gpu/, the dry run with a _dry suffix):
#   1. torch.cuda.is_available() or a clear failure (skipped by --dry-run);
#   2. benchmarks/gpu_train_step.py: seconds per step of dl.train on the gpu recipe (bf16, fp32,
#      torch.compile), model FLOP/s against the card's measured bf16 matmul rate (the roofline), and
#      the host syncs per step of the trainer and of the DDPM, DDIM and DPM-Solver++ samplers;
#   3. benchmarks/gpu_recipe.py: chapter 07's gpu profile trained through the recipe (the cache keeps
#      an unfinished run: a rerun resumes it), stopped at a time budget, then sampled and judged.
set -uo pipefail  # no -e: a step that fails or times out still lets the next one run
cd "$(dirname "$0")/.."
DRY=""
if [[ "${1:-}" == "--dry-run" ]]; then DRY="--dry-run"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export DL_DATA_DIR="${DL_DATA_DIR:-$PWD/.data}"
export DL_CACHE_DIR="${DL_CACHE_DIR:-$PWD/.cache/diffusion_lite}"
PY="${PYTHON:-python3} -u"  # -u: progress lines appear as they happen
mkdir -p benchmarks/results/gpu
if [[ -z "$DRY" ]]; then
  $PY -c 'import sys, torch; ok = torch.cuda.is_available(); print("torch", torch.__version__, "cuda:", ok, torch.cuda.get_device_name(0) if ok else ""); sys.exit(0 if ok else 1)' \
    || { echo "gpu_check.sh: torch.cuda.is_available() is False: this script needs a CUDA GPU (or pass --dry-run)" >&2; exit 1; }
  if [[ ! -e "$DL_DATA_DIR/mnist" ]]; then
    echo "gpu_check.sh: no MNIST files in $DL_DATA_DIR/mnist: copy them into .data/mnist/ or set DL_DATA_DIR" >&2; exit 1
  fi
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > benchmarks/results/gpu/nvidia_smi.csv || true
fi
start=$SECONDS
# torch.compile is timed on the GPU only: on the CPU it needs minutes of C++ compilation (tests/test_train.py
# checks that a compiled step gives the same losses there)
COMPILE="--compile"; if [[ -n "$DRY" ]]; then COMPILE=""; fi
timeout 240 $PY benchmarks/gpu_train_step.py $COMPILE $DRY
echo "gpu_check.sh: gpu_train_step exited with $? after $((SECONDS - start)) s"
timeout 280 $PY benchmarks/gpu_recipe.py --budget 150 $DRY
echo "gpu_check.sh: gpu_recipe exited with $?"
echo "gpu_check.sh: done in $((SECONDS - start)) s; results in benchmarks/results/gpu/"
