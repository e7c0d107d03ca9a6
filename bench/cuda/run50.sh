#!/bin/bash
# run 50: Nsight Compute sections of the int8 product variants and the read-only kernels, one
# launch each (GEMV_BENCH_ONCE), on three Qwen3-8B shapes: what the products wait on
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for sh in Q4_K:24576:4096 Q6_K:4096:12288 Q4_K:4096:4096; do
  GEMV_BENCH_ONCE=1 timeout 150 $NCU -k regex:"gemv_q8|read_" --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section LaunchStats --section MemoryWorkloadAnalysis --section SchedulerStats \
    $C/cuda_gemv_bench $sh > $OUT/ncu_$sh.txt 2>&1
  echo "$sh rc=$?"
done
ls -la $OUT
