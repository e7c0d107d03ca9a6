#!/bin/bash
# run 65: PDL without an early trigger (launch.cuh as merged): the backend tests and golden
# logits under STRATA_CUDA_PDL=1 and 2, then Qwen3-8B Q4_K_M `strata bench` with PDL 0 / 1 / 2
# alternated, and cuda_bench's decode steps with PDL 0 / 1.
source bench/cuda/device_env.sh .gpu_carry_lead
C=$CARRY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
(timeout 200 $C/strata synth --preset qwen3-8b --type Q4_K_M -o /tmp/q8b.gguf > /tmp/synth.log 2>&1; echo "synth rc $?" >> /tmp/synth.log) &
for p in 1 2; do
  STRATA_CUDA_PDL=$p timeout 200 $C/cuda_backend_test > $OUT/test_pdl$p.log 2>&1
  echo "cuda_backend_test PDL=$p rc $?: $(grep -E 'PASSED|FAILED' $OUT/test_pdl$p.log | tr '\n' ' ')"
  STRATA_CUDA_PDL=$p timeout 100 $C/golden_test > $OUT/golden_pdl$p.log 2>&1
  echo "golden_test PDL=$p rc $?: $(grep -E 'PASSED|FAILED' $OUT/golden_pdl$p.log | tr '\n' ' ')"
done
wait; tail -1 /tmp/synth.log
for r in 1 2 3; do
  for p in 0 1 2; do
    line=$(STRATA_CUDA_PDL=$p timeout 120 $C/strata bench --backend cuda -m /tmp/q8b.gguf -p 2048 -n 128 2>&1 |
      awk '/^prefill/{p=$4} /^decode/{d=$4} END{printf "decode %s prefill %s", d, p}')
    echo "[PDL=$p] $line"
  done
done
for p in 0 1; do
  echo "== cuda_bench PDL=$p"
  STRATA_CUDA_PDL=$p timeout 100 $C/cuda_bench Q4_K_M 2>&1 | grep -E "decode|prefill" | head -12
done
