#!/bin/bash
# On the GPU machine, from the repository root: per-kernel times of decode steps by Nsight
# Compute (one metric, gpu__time_duration: each kernel alone, no launch gaps), beside the
# plain `strata bench` numbers. Usage: run_device_profile.sh PRESET TYPE [PRESET TYPE ...].
# Binaries and their shared libraries are in $CARRY; logs and CSVs go to $OUT.
# Summarise the CSVs with bench/cuda/ncu_steps.py.
set -o pipefail
source "$(dirname "$0")/device_env.sh" .gpu_carry_lead
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
T0=$(date +%s)
while [ $# -ge 2 ]; do
  preset=$1 type=$2; shift 2
  tag=${preset}_${type}
  M=/tmp/${tag}.gguf
  [ -f $M ] || timeout 240 "$CARRY/strata" synth --preset "$preset" --type "$type" -o $M > "$OUT/synth_$tag.log" 2>&1
  echo "synth $tag rc=$? $(( $(date +%s) - T0 ))s"
  timeout 150 "$CARRY/strata" bench --backend cuda -m $M -p ${P:-2048} -n ${N:-128} > "$OUT/bench_$tag.log" 2>&1
  echo "bench $tag rc=$? $(( $(date +%s) - T0 ))s"; tail -6 "$OUT/bench_$tag.log"
  if [ -n "$NCU" ] && [ -z "$NO_NCU" ]; then
    timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
      --log-file "$OUT/ncu_$tag.csv" "$CARRY/strata" bench --backend cuda -m $M -p 64 -n 4 --reps 1 > "$OUT/ncu_$tag.log" 2>&1
    echo "ncu $tag rc=$? $(( $(date +%s) - T0 ))s"; tail -3 "$OUT/ncu_$tag.log"
  fi
done
