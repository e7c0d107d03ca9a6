#!/bin/bash
# On the GPU machine, from the repository root (hybrid round, branch q35cuda): the gpu tests,
# golden_test (CUDA mode includes the qwen35 cases), then the Qwen3.6-35B-A3B shape in Q4_K_M:
# synthesized, then `strata bench --backend cuda`. Binaries and their shared libraries are in
# $CARRY (default .gpu_carry_q35); logs go to $OUT.
set -o pipefail
source "$(dirname "$0")/device_env.sh" .gpu_carry_q35
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
T0=$(date +%s)
timeout 150 "$CARRY/cuda_backend_test" > "$OUT/test.log" 2>&1; echo "test rc=$? $(( $(date +%s) - T0 ))s"
grep -E "^\[  (PASSED|FAILED)|FAILED  \]|deltanet-cuda" "$OUT/test.log" | head -30
timeout 120 "$CARRY/golden_test" > "$OUT/golden.log" 2>&1; echo "golden rc=$? $(( $(date +%s) - T0 ))s"
grep -E "cuda|PASSED|FAILED" "$OUT/golden.log" | tail -30
M=/tmp/q36_35b_a3b_q4km.gguf
[ -f $M ] || timeout 240 "$CARRY/strata" synth --preset qwen3.6-35b-a3b --type Q4_K_M -o $M > "$OUT/synth.log" 2>&1
echo "synth rc=$? $(( $(date +%s) - T0 ))s"; tail -3 "$OUT/synth.log"; ls -la $M
timeout 200 "$CARRY/strata" bench --backend cuda -m $M -p 2048 -n 128 "$@" > "$OUT/bench.log" 2>&1
echo "bench rc=$? $(( $(date +%s) - T0 ))s"; cat "$OUT/bench.log" | tail -8
# The delta rule staging q, k and gates inside the kernel (v1) for prefill: the A/B of the prep pass.
STRATA_CUDA_DELTA_PREP=0 timeout 100 "$CARRY/strata" bench --backend cuda -m $M -p 2048 -n 16 > "$OUT/bench_noprep.log" 2>&1
echo "bench noprep rc=$? $(( $(date +%s) - T0 ))s"; tail -2 "$OUT/bench_noprep.log"
# Prefill op times (STRATA_CUDA_OP_TIMES: each op of a large eager step but the first waits
# for the stream): the second prefill of two.
STRATA_CUDA_OP_TIMES=1 timeout 120 "$CARRY/strata" bench --backend cuda -m $M -p 2048 -n 16 --reps 2 > "$OUT/bench_optimes.log" 2>&1
echo "bench op times rc=$? $(( $(date +%s) - T0 ))s"; cat "$OUT/bench_optimes.log" | tail -24
