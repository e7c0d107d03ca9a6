#!/bin/bash
# On the GPU machine, from the repository root: the gpu tests, golden_test (its CUDA mode
# runs where a GPU is present), then cuda_bench. Binaries and the shared libraries they need
# (libfmt, libxxhash) are carried in $CARRY (default .gpu_carry_perf); logs go to $OUT.
# Usage: bench/cuda/run_device.sh [cuda_bench args...]
set -o pipefail
source "$(dirname "$0")/device_env.sh" .gpu_carry_perf
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
"$CARRY/cuda_backend_test" 2>&1 | tee "$OUT/test.log" | grep -E "OK|FAILED|PASSED|Failure|error" | head -40
"$CARRY/golden_test" 2>&1 | tee "$OUT/golden.log" | grep -E "PASSED|FAILED|cuda" | tail -8
"$CARRY/cuda_bench" "$@" 2>&1 | tee "$OUT/bench.log"
